"""Which part goes in which split, and in what order parts are tried: the same rule for every source.

A part's place in line is a hash of (seed, id), so the choice does not depend on how files are
listed, and growing a split from N to 2N keeps the first N. Without a split file a part's split
is also fixed by a hash of its id (about 85 / 5 / 10 train / validation / test).
"""

from __future__ import annotations

import hashlib

SPLITS = ("train", "validation", "test")
# Without a split file: share of ids that fall in each split (DeepCAD's is about 90/5/5).
_SPLIT_BUCKETS = {"test": 10, "validation": 5}  # percent; the rest is train


def rank(model_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{model_id}".encode(), digest_size=8).digest(), "big")


def hash_split(model_id: str, seed: int) -> str:
    bucket = rank(model_id, seed + 1_000_003) % 100
    if bucket < _SPLIT_BUCKETS["test"]:
        return "test"
    if bucket < _SPLIT_BUCKETS["test"] + _SPLIT_BUCKETS["validation"]:
        return "validation"
    return "train"


def order_pools(ids, seed: int, official: dict | None = None, present=None) -> dict[str, list[str]]:
    """Per split, the ids in the order they are tried: the split file's lists (`official`, keeping
    the ids that `present(id)` accepts) or each id's hash split, then each sorted by rank(seed, id)."""
    if official is not None:
        pools = {s: [i for i in official.get(s, []) if present(i)] for s in SPLITS}
    else:
        pools = {s: [] for s in SPLITS}
        for i in ids:
            pools[hash_split(i, seed)].append(i)
    return {s: sorted(ids, key=lambda i: rank(i, seed)) for s, ids in pools.items()}
