"""`dvc plots show` / `dvc plots diff` pages draw the Loss plot with no network at all.

DVC's own page loads vega, vega-lite and vega-embed from a CDN; scripts/plots_template.py writes
a template that inlines the builds npm put in web/node_modules, and scripts/setup.sh points DVC at
it (`dvc config --local plots.html_template`). Here a throwaway git+DVC repository carries this
project's `plots:` section and its committed DVCLive files (metrics/train/plots), DVC writes the
pages, and headless Chromium (Debian's `chromium` + `chromium-driver`, as in test_serve_browser)
opens them with every host name unresolvable and every connection sent to a dead proxy. The
page DVC writes without the template is the control: in the same browser it must draw nothing,
which shows the block holds. Skipped, saying why, without Chromium or without web/node_modules.

`CADVLM_PLOTS_PNG=docs/plots_offline.png pytest tests/test_plots_offline.py -k show` also saves
the offline Loss plot as that picture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "web" / "node_modules"
LIBRARIES = ("vega", "vega-lite", "vega-embed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
BUILDS_MISSING = [n for n in LIBRARIES if not (NODE_MODULES / n / "build" / f"{n}.min.js").is_file()]
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER) or bool(BUILDS_MISSING),
    reason="headless Chromium not installed (scripts/setup.sh installs chromium and chromium-driver)"
    if not (CHROMIUM and DRIVER) else
    f"web/node_modules lacks {', '.join(BUILDS_MISSING)} (scripts/setup.sh runs npm ci in web/)")
PURPLE, CYAN = (0x94, 0x5D, 0xD6), (0x13, 0xAD, 0xC7)  # dvc_render's first two line colours (one per revision)


def major(version: str) -> int:
    return int(version.split(".")[0])


def test_pinned_majors_match_dvc_render():
    """The pins in web/package.json are the majors DVC's page would fetch, and speak its specs' vega-lite."""
    from dvc_render.vega import VegaRenderer
    from dvc_render.vega_templates import LinearTemplate

    cdn = {name: int(m) for name, m in re.findall(r"/npm/(vega(?:-lite|-embed)?)@(\d+)\.", VegaRenderer.SCRIPTS)}
    assert set(cdn) == set(LIBRARIES), VegaRenderer.SCRIPTS
    pins = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", pins[name]) for name in LIBRARIES), pins  # exact versions
    assert {name: major(pins[name]) for name in LIBRARIES} == cdn
    schema = LinearTemplate.DEFAULT_CONTENT["$schema"]
    assert schema.endswith(f"/vega-lite/v{major(pins['vega-lite'])}.json"), schema
    for name in LIBRARIES:
        installed = NODE_MODULES / name / "package.json"
        if installed.is_file():  # what npm ci put there is what the lock pins
            assert json.loads(installed.read_text())["version"] == pins[name], name


def dvc(repo: Path, *args: str) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """DVC's pages for this project's plots: CDN (no template), offline show, offline diff."""
    base = tmp_path_factory.mktemp("plots")
    template = base / "template.html"
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "plots_template.py"), "--out", str(template)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert "cdn.jsdelivr" not in template.read_text() and "{scripts}" not in template.read_text()

    repo = base / "repo"
    (repo / "metrics" / "train").mkdir(parents=True)
    shutil.copytree(ROOT / "metrics" / "train" / "plots", repo / "metrics" / "train" / "plots")
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "commit", "-qm",
                    "plots"], cwd=repo, check=True)

    out = {"cdn": base / "cdn", "show": base / "show", "diff": base / "diff"}
    dvc(repo, "plots", "show", "-o", str(out["cdn"]))
    dvc(repo, "config", "--local", "plots.html_template", str(template))  # what setup.sh does
    dvc(repo, "plots", "show", "-o", str(out["show"]))
    train = repo / "metrics" / "train" / "plots" / "metrics" / "train" / "loss.tsv"
    header, *rows = train.read_text().splitlines()
    lower = [f"{step}\t{float(loss) * 0.7}" for step, loss in (row.split("\t") for row in rows)]
    train.write_text("\n".join([header, *lower]) + "\n")  # the workspace: another run, apart from HEAD's
    dvc(repo, "plots", "diff", "HEAD", "-o", str(out["diff"]))
    return {name: path / "index.html" for name, path in out.items()}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that can reach nothing: no name resolves, every connection goes to port 9."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=900,2400",
                "--hide-scrollbars", "--force-device-scale-factor=2", "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


# Pixels of the Loss plot's canvas within 40 per channel of each colour (lines are anti-aliased).
COUNT_COLOURS = """
const canvas = document.querySelector('#Loss canvas');
if (!canvas || !canvas.width) return null;
const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
return arguments[0].map(([r, g, b]) => {
    let n = 0;
    for (let i = 0; i < px.length; i += 4) {
        const near = Math.abs(px[i] - r) < 40 && Math.abs(px[i + 1] - g) < 40 && Math.abs(px[i + 2] - b) < 40;
        if (px[i + 3] > 128 && near) n++;
    }
    return n;
});
"""


def drawn(driver, page: Path, colours, timeout: float = 30.0) -> list[int] | None:
    """Open page; the count of each colour's pixels in the Loss plot once drawn, or None if no plot came."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(page.as_uri())
    deadline, counts = time.time() + timeout, None
    while time.time() < deadline:
        counts = driver.execute_script(COUNT_COLOURS, colours)
        if counts and min(counts) > 0:
            time.sleep(0.5)  # vega renders asynchronously: let it finish, then count again
            return driver.execute_script(COUNT_COLOURS, colours)
        if driver.execute_script("return typeof vegaEmbed") == "undefined":
            return None  # the libraries never came: nothing can draw
        time.sleep(0.2)
    return counts


@needs_browser
def test_cdn_page_draws_nothing_without_network(pages, browser):
    """The control: DVC's default page wants the CDN, which this browser cannot reach."""
    html = pages["cdn"].read_text()
    assert "https://cdn.jsdelivr.net/npm/vega@" in html
    assert drawn(browser, pages["cdn"], [PURPLE], timeout=10) is None
    assert browser.execute_script("return typeof vega + typeof vegaLite + typeof vegaEmbed") == "undefined" * 3
    assert not browser.execute_script("return document.querySelector('#Loss canvas, #Loss svg')")
    failed = " ".join(e["message"] for e in browser.get_log("browser"))
    assert "cdn.jsdelivr.net" in failed and "net::ERR_" in failed, failed


@needs_browser
def test_plots_show_draws_offline(pages, browser):
    html = pages["show"].read_text()
    assert "cdn.jsdelivr" not in html and not re.search(r"<script[^>]+src=", html)
    (purple,) = drawn(browser, pages["show"], [PURPLE])
    assert purple > 1500, purple  # the train and validation curves, not just a legend swatch
    assert browser.execute_script("return vegaEmbed.version + ' ' + vega.version + ' ' + vegaLite.version")
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
    if os.environ.get("CADVLM_PLOTS_PNG"):
        from selenium.webdriver.common.by import By

        browser.find_element(By.ID, "Loss").screenshot(os.environ["CADVLM_PLOTS_PNG"])


@needs_browser
def test_plots_diff_draws_offline(pages, browser):
    """`dvc plots diff HEAD`: one colour per revision, both drawn."""
    assert "cdn.jsdelivr" not in pages["diff"].read_text()
    purple, cyan = drawn(browser, pages["diff"], [PURPLE, CYAN])
    assert purple > 1000 and cyan > 1000, (purple, cyan)
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
