"""Shared fixtures: where the real DeepCAD samples live (skip cleanly when they are absent), and a
map over all cores for the sweeps over a thousand models.

The samples are `../shared/deepcad` beside the checkout; `CADVLM_SAMPLES=DIR` points elsewhere and
`CADVLM_SAMPLES=none` hides them, as on a fresh clone outside CI (`.ci/run` runs the tests that read
them both ways). Every test that reads them carries the `samples` marker: added here to those that
take the `deepcad_dir` fixture or a sample file as a parameter, written out on the others.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "deepcad"
_CHOICE = os.environ.get("CADVLM_SAMPLES", "")
HIDDEN = _CHOICE.lower() in ("none", "off", "0")
SHARED = Path("/nonexistent/cadvlm-samples-hidden") if HIDDEN else Path(_CHOICE) if _CHOICE else _DEFAULT
MISSING = (f"real DeepCAD samples hidden (CADVLM_SAMPLES={_CHOICE})" if HIDDEN
           else f"real DeepCAD samples not found at {SHARED}")


def real_json_files() -> list[Path]:
    return sorted((SHARED / "json").glob("*.json")) if SHARED.is_dir() else []


@pytest.fixture
def deepcad_dir() -> Path:
    if not (SHARED / "json").is_dir():
        pytest.skip(MISSING)
    return SHARED


def _reads_samples(item) -> bool:
    if "deepcad_dir" in getattr(item, "fixturenames", ()):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(v, Path) and SHARED in v.parents for v in params.values())


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _reads_samples(item):
            item.add_marker(pytest.mark.samples)


def map_on_cores(fn, items: list) -> list:
    """[fn(x) for x in items], one process per core: the thousand-model sweeps take minutes on one.
    fn must be a module-level function; an exception in it fails the test as it would in a loop."""
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (8 * cores))))
