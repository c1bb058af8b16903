"""The page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`, which
scripts/setup.sh installs) driven by Selenium against a real server on 127.0.0.1.

A person's path through the page: pick a rendered picture, press the button, wait for the part;
the 3-D viewer must show something (its pixels are not one flat colour), and the STEP download
must be a file that OpenCascade reads back as the part. Skipped, saying why, only when Chromium
or its driver is not installed.
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest
from serve_helpers import ScriptedGenerate, ServerThread, model_dir, sheet_png, wait_workers_ready

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="headless Chromium not installed (scripts/setup.sh installs chromium and "
                                       "chromium-driver)")


def chrome(download_dir: Path, width: int = 1280, height: int = 1000):
    """A headless Chromium with software WebGL (SwiftShader) that saves downloads to download_dir."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", f"--window-size={width},{height}",
                "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False,
                                           "safebrowsing.enabled": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_upload_view_and_download(tmp_path):
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import bounding_box
    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    picture = tmp_path / "sheet.png"
    picture.write_bytes(sheet_png(128))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    cfg = ServeConfig(model_dir=model_dir(tmp_path / "model"), results_dir=tmp_path / "results", workers=1,
                      api_token="", project_dir=tmp_path)
    app = create_app(cfg, generate_fn=ScriptedGenerate())
    with ServerThread(app) as server:
        wait_workers_ready(app)
        driver = chrome(downloads)
        try:
            driver.get(server.url + "/")
            assert "cadvlm" in driver.title
            wait_for(lambda: driver.execute_script("return !!customElements.get('model-viewer')"), 20,
                     "the model-viewer component (is web/node_modules installed? run scripts/setup.sh)")
            go = driver.find_element(By.ID, "go")
            assert not go.is_enabled()  # nothing picked yet
            driver.find_element(By.CSS_SELECTOR, "input[data-field=image]").send_keys(str(picture))
            wait_for(go.is_enabled, 5, "the button to enable")
            go.click()
            verdict = wait_for(lambda: driver.find_element(By.ID, "verdict").text, 60, "the result")
            assert verdict.startswith("A valid part") and "40 × 20 × 5 mm" in verdict, verdict
            wait_for(lambda: driver.execute_script("return document.getElementById('viewer').loaded"), 60,
                     "the 3-D model to load")
            time.sleep(1.0)  # a few frames
            viewer = driver.find_element(By.ID, "viewer")
            pixels = np.asarray(Image.open(io.BytesIO(viewer.screenshot_as_png)).convert("L"), dtype=float)
            shaded = (pixels < 240).mean()  # the paper is white; the part is shaded grey
            assert pixels.std() > 4 and 0.02 < shaded < 0.9, (pixels.std(), shaded)  # a part, not a blank canvas
            code = driver.find_element(By.ID, "code").text
            assert code.startswith("SketchPlane0")
            driver.find_element(By.CSS_SELECTOR, "a[download='part.step']").click()
            step = downloads / "part.step"
            wait_for(lambda: step.is_file() and step.stat().st_size > 1000 and
                     not list(downloads.glob("*.crdownload")), 30, "the STEP download")
            lo, hi = bounding_box(read_step(step))
            assert (hi - lo) * 1000 == pytest.approx([40, 20, 5], abs=1e-3)
            logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            assert not logs, logs
        finally:
            driver.quit()
