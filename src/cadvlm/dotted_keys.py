"""Nested params as the dotted keys `dvc exp run -S` takes, for the preset command and the serve
experiment endpoints (one definition of what `train.lr` means in a nested YAML tree)."""

from __future__ import annotations


def flatten(tree: dict | None, prefix: str = "") -> dict:
    """{"train": {"lr": 1e-4}} -> {"train.lr": 1e-4} (lists are values, not sections)."""
    out = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
