"""benchmarks/gpu_check.sh, the first GPU check: its CPU dry run passes end to end, and the driver turns
crashes, hangs and pytest skips into table rows. Timings are figures, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

CHECK_ROWS = ["lora tinyllava-phi2-siglip", "full tiny (train stage)", "generate tiny (evaluate)",
              "serve (bench_serve)", "fsdp (test_distributed)", "zero2 (test_distributed)"]
SHARDED = {"fsdp (test_distributed)", "zero2 (test_distributed)"}


def _rows(text: str) -> dict[str, tuple[str, str]]:
    """check name -> (status, figures), from the table's lines."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[0].split()[:3] == ["check", "status", "seconds"] and set(lines[1]) <= {"-", " "}
    out = {}
    for ln in lines[2:]:
        name = next(n for n in CHECK_ROWS if ln.startswith(n))
        status, _seconds, figures = ln[len(name):].split(None, 2)
        out[name] = (status, figures)
    return out


@pytest.mark.slow
def test_cpu_dry_run(tmp_path):
    out = tmp_path / "table.txt"
    env = dict(os.environ, CADVLM_PYTHON=sys.executable)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    text = out.read_text()
    assert text in done.stdout  # the printed table is the written one
    rows = _rows(text)
    assert list(rows) == CHECK_ROWS
    for name, (status, figures) in rows.items():
        assert status == ("skip" if name in SHARDED else "ok"), (name, figures)
    lora, train = rows["lora tinyllava-phi2-siglip"][1], rows["full tiny (train stage)"][1]
    for figure in ("tokens/s", "ms/step", "MFU n/a", "peak", "loss", "converted"):
        assert figure in lora, figure
    for figure in ("samples/s", "tokens/s", "peak", "loss", "val"):
        assert figure in train, figure
    assert "loss none" not in train and "val none" not in train
    assert "answers/s" in rows["generate tiny (evaluate)"][1] and "trained by the train check" in \
        rows["generate tiny (evaluate)"][1]
    serve = rows["serve (bench_serve)"][1]
    assert "req/s" in serve and "errors 0" in serve and "bad input 4xx yes" in serve
    assert rows["fsdp (test_distributed)"][1].startswith("skip (no GPU)")
    assert "# CPU dry run" in text and "4 ok, 2 skip, 0 fail" in text
    assert not list((REPO / "benchmarks" / "results").glob("gpu_check_cpu*"))  # nothing written into the repo


def test_failed_and_hung_checks_are_rows_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    runner = gpu_check.Runner(cpu=True, work=tmp_path / "work", budget_s=60)
    runner.min_start_s = 0
    crashed = runner.run("crash", [sys.executable, "-c", "print('start'); raise SystemExit('boom: out of memory')"], 30)
    assert crashed.rc == 1 and "boom: out of memory" in crashed.failure()
    t = time.monotonic()
    hung = runner.run("hang", [sys.executable, "-c", "import time; time.sleep(120)"], 1)
    assert hung.rc is None and "timed out" in hung.failure() and time.monotonic() - t < 60  # killed, not waited for

    def crash(r):
        ran = r.run("crash", [sys.executable, "-c", "raise SystemExit(3)"], 30)
        return [gpu_check.Row("first", "fail", ran.seconds, ran.failure())]

    def fine(r):
        return [gpu_check.Row("second", "ok", 0.0, "1 tokens/s")]

    monkeypatch.setattr(gpu_check, "CHECKS", (crash, fine))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the kept work folder of a failed run lands here
    out = tmp_path / "t.txt"
    assert gpu_check.main(["--cpu", "--out", str(out)]) == 1
    text = out.read_text()
    assert "first   fail" in text and "exit 3" in text and "second  ok" in text and "1 ok, 0 skip, 1 fail" in text


def test_budget_spent_is_a_fail_row(tmp_path):
    runner = gpu_check.Runner(cpu=True, work=tmp_path, budget_s=5)
    ran = runner.run("late", [sys.executable, "-c", "pass"], 30)
    assert ran.rc is None and "budget" in ran.failure()


def test_sharded_rows_from_pytest_junit(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text("""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_distributed" name="test_sharded_launchers_on_gpus[fsdp]" time="41.5" />
<testcase classname="tests.test_distributed" name="test_sharded_launchers_on_gpus[zero2]" time="0.01">
<skipped type="pytest.skip" message="DeepSpeed is not installed (pip install deepspeed)">skip</skipped></testcase>
<testcase classname="tests.test_distributed" name="test_other[x]" time="2.0">
<failure message="AssertionError: exit 1&#10;more">trace</failure></testcase>
</testsuite></testsuites>""")
    rows = gpu_check.sharded_rows(xml)
    assert [(r.name, r.status) for r in rows] == [("fsdp (test_distributed)", "ok"),
                                                   ("zero2 (test_distributed)", "skip"),
                                                   ("x (test_distributed)", "fail")]
    assert rows[1].figures == "skip: DeepSpeed is not installed (pip install deepspeed)"
    assert rows[2].figures == "AssertionError: exit 1" and rows[0].seconds == 41.5


def test_card_slug():
    assert gpu_check.slug("NVIDIA H100 80GB HBM3") == "nvidia_h100_80gb_hbm3"
    assert gpu_check.slug("NVIDIA H200") == "nvidia_h200"
