"""Shared fixtures: where the real DeepCAD samples live (skip cleanly when they are absent)."""

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
