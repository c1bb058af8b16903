"""Shared fixtures: where the real DeepCAD samples live (skip cleanly when they are absent), and a
map over all cores for the sweeps over a thousand models."""

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "deepcad"


def real_json_files() -> list[Path]:
    return sorted((SHARED / "json").glob("*.json")) if SHARED.is_dir() else []


@pytest.fixture
def deepcad_dir() -> Path:
    if not (SHARED / "json").is_dir():
        pytest.skip(f"real DeepCAD samples not found at {SHARED}")
    return SHARED


def map_on_cores(fn, items: list) -> list:
    """[fn(x) for x in items], one process per core: the thousand-model sweeps take minutes on one.
    fn must be a module-level function; an exception in it fails the test as it would in a loop."""
    cores = os.cpu_count() or 1
    with ProcessPoolExecutor(cores) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (8 * cores))))
