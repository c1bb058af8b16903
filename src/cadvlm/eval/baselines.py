"""Baselines scored through the same protocol as the model, in the same metrics file.

- oracle: the ground truth written as code (writer -> code -> parser -> build); it must give
  invalid 0 and IoU ~1; its Chamfer distance is the sampling floor;
- constant: one training answer given for every picture; the one chosen is, among a bounded set
  of candidates (the most frequent training answers, ties broken by a hash), the one with the
  lowest median Chamfer distance on the validation split. A model must beat it to have learnt
  anything from the pictures;
- nearest picture: the answer of the training sample whose picture is closest (grey levels at
  RETRIEVAL_PX square, squared differences: `cadvlm.model.retrieval`). No learning at all, only
  lookup: it shows how much the pictures alone say and how close the training set comes to each
  test part, the yardstick a model that reads pictures should approach.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from pathlib import Path
from typing import Iterable

from cadvlm.cad.model import CADError
from cadvlm.codec.format import CodeFormat
from cadvlm.eval.scoring import ScoreConfig, make_pool, progress_bar, select_task
from cadvlm.model.retrieval import RETRIEVAL_PX, RetrievalBank

# Points per solid when choosing the constant answer. Choosing only ranks candidates whose
# Chamfer distances are ~10-100 (x1000) apart, far above the sampling noise of 2,048 points
# (~0.6), and it is ~5x cheaper than 8,192: 50 candidates x 50 validation models = 2,500 pairs.
# The chosen answer is then scored on the test split with the full protocol.
SELECTION_POINTS = 2048


def oracle_answer(truth_path: Path, model_id: str, code: CodeFormat) -> str:
    """The ground truth as the model should have written it (empty when it cannot be written)."""
    from cadvlm.cad.deepcad_json import read_model

    try:
        return code.answer(read_model(truth_path, model_id))
    except Exception:  # unreadable truth (scored as truth_error anyway) or a writer bug (shows as no_code)
        return ""


def candidate_answers(train_answers: Iterable[tuple[str, str]], k: int, code: CodeFormat) -> list[tuple[str, str]]:
    """Up to k distinct training answers [(train id, answer)]: the most frequent codes first,
    ties broken by a hash of the code (deterministic, and a fair sample when all are unique)."""
    counts: Counter = Counter()
    first: dict[str, tuple[str, str]] = {}
    for sid, answer in train_answers:
        try:
            text = code.code_of(answer).strip()
        except CADError:
            continue
        counts[text] += 1
        first.setdefault(text, (sid, answer))

    def key(text):
        return (-counts[text], hashlib.blake2b(text.encode(), digest_size=8).hexdigest())

    return [first[c] for c in sorted(counts, key=key)[:k]]


def choose_constant(candidates: list[tuple[str, str]], val_truths: list[tuple[str, str]], cfg: ScoreConfig,
                    code: CodeFormat, pool=None) -> dict | None:
    """The candidate with the lowest median Chamfer x1000 on the validation truths (a candidate
    that fails to build, or on any truth, is out). None when no candidate is usable."""
    tasks = [{"answer": a, "truths": val_truths, "seed": cfg.seed, "n_points": min(SELECTION_POINTS, cfg.n_points),
              "code": code} for _, a in candidates]
    own = pool is None
    pool = make_pool(cfg) if own else pool
    scores: list = [None] * len(tasks)
    try:
        with progress_bar(len(tasks), "constant baseline", cfg.progress) as bar:
            # one task scores a candidate on every validation model: allow for that many
            for out in pool.run(select_task, tasks, timeout=cfg.timeout_s * (1 + len(val_truths) / 10)):
                if out.status == "ok" and out.value and all(v is not None for v in out.value):
                    scores[out.index] = statistics.median(out.value)
                bar.update(1)
    finally:
        if own:
            pool.close()
    usable = [(s, i) for i, s in enumerate(scores) if s is not None]
    if not usable:
        return None
    best, i = min(usable)
    return {"train_id": candidates[i][0], "answer": candidates[i][1], "val_chamfer_median": best,
            "n_candidates": len(candidates), "n_usable": len(usable), "n_val": len(val_truths)}


def nearest_answers(train: list, queries: list, k: int = 1, px: int = RETRIEVAL_PX) -> list[list[str]]:
    """The answers of the k closest training pictures for each query, closest first (records with
    .image/.answer; ties go to the earlier training picture). [0] of each is the lookup baseline's.
    The same lookup a model folder's bank answers (`cadvlm.model.retrieval`), built here from the split."""
    bank = RetrievalBank.build([r.image for r in train], [r.answer for r in train], px=px)
    return bank.nearest_answers([r.image for r in queries], k)
