"""Render-and-compare: of several answers for one picture, keep the one whose part looks most like it.

A model that reads pictures imperfectly often has the right part among a few sampled answers.
Each candidate is rebuilt (`cadvlm.rebuild.rebuild`: parsed, never executed) and drawn with the
render stage's renderer and the model's own render settings (views, margin, framing; only the
size is reduced to COMPARE_PX a view), in a time-limited worker (`cadvlm.sandbox`): nothing is
built in the calling process. The input picture is cut into its views the same way. Per view,
the ink masks (pixels darker than the paper) are compared by intersection over union; a
candidate's score is the mean over the views. The best score wins; ties go to the earlier
candidate, and when none builds the first is kept (so put the greedy answer first).

The renderer fits every part to the frame (one scale for all views of a part), so the masks
compare shape and proportions, not size: the code's absolute size is not checked here.

For callers (evaluate, `cadvlm predict --samples N`, serve): `select_answers(pool, pictures,
candidates, code, render_params)` with a `TimeLimitedPool` (`make_compare_pool`) ->
one `Choice` per picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadvlm.codec.format import CodeFormat

COMPARE_PX = 128  # pixels per view side for the comparison (the input is reduced to it)
PAPER_LEVEL = 250  # grey levels below this are ink (faces, outlines); the paper is 255
WARMUP = ("cadvlm.render_compare", "cadvlm.rebuild", "cadvlm.geometry.solid", "cadvlm.geometry.mesh",
          "cadvlm.render.views", "cadvlm.render.pipeline")


@dataclass
class Choice:
    index: int  # the chosen candidate
    answer: str
    scores: list  # per candidate: mean silhouette IoU, or None when it does not build or draw
    n_built: int  # candidates that built and were drawn (distinct answers counted once each)


def make_compare_pool(workers: int = 2, timeout_s: float = 30.0):
    from cadvlm.sandbox import TimeLimitedPool

    return TimeLimitedPool(workers, timeout_s, warmup=WARMUP)


def compare_job(render_params: dict, px: int = COMPARE_PX):
    """The render stage's job for the model's pictures (manifest.render_params()), at px a view."""
    from dataclasses import replace

    from cadvlm.render.pipeline import RenderJob

    job = RenderJob.from_params(render_params)
    return replace(job, settings=replace(job.settings, size=int(px)))


def _cells(picture: np.ndarray, views: tuple, layout: str, view: str | None) -> dict:
    """{view: grey cell} of a picture in the job's layout (grid: the sheet's cells, dividers blanked)."""
    from cadvlm.render.sheet import GRID_LAYOUT

    if layout != "grid":
        return {view or views[0]: picture}
    rows, cols = len(GRID_LAYOUT), max(len(r) for r in GRID_LAYOUT)
    h, w = picture.shape[0] // rows, picture.shape[1] // cols
    out = {}
    for i, row in enumerate(GRID_LAYOUT):
        for j, name in enumerate(row):
            if name in views:
                cell = picture[i * h:(i + 1) * h, j * w:(j + 1) * w].copy()
                cell[:1, :], cell[:, :1], cell[-1:, :], cell[:, -1:] = 255, 255, 255, 255  # the dividers
                out[name] = cell
    return out


def ink_mask(cell: np.ndarray, px: int = COMPARE_PX) -> np.ndarray:
    """Boolean (px, px) mask of ink in a grey view (box-filtered down to px first)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(cell, dtype=np.uint8), mode="L")
    if im.size != (px, px):
        im = im.resize((px, px), Image.BOX)
    return np.asarray(im) < PAPER_LEVEL


def target_masks(picture, job, view: str | None = None) -> dict:
    """{view: mask} of an input picture (PIL image or uint8 array) in the job's layout."""
    arr = np.asarray(picture.convert("L")) if hasattr(picture, "convert") else np.asarray(picture, np.uint8)
    if arr.ndim == 3:
        arr = arr.mean(axis=2).astype(np.uint8)
    px = int(job.settings.size)
    return {v: ink_mask(c, px) for v, c in _cells(arr, tuple(job.views), job.layout, view).items()}


def silhouette_iou(a: dict, b: dict) -> float:
    """Mean over the views of a of the masks' IoU (a view both leave empty counts 1, one missing in b 0)."""
    scores = []
    for v, m in a.items():
        other = b.get(v)
        if other is None:
            scores.append(0.0)
            continue
        union = np.logical_or(m, other).sum()
        scores.append(1.0 if union == 0 else float(np.logical_and(m, other).sum()) / float(union))
    return float(np.mean(scores)) if scores else 0.0


def candidate_task(task: dict) -> float | None:
    """Worker: rebuild one answer, draw its views with the job, score them against the target masks."""
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.rebuild import rebuild
    from cadvlm.render.views import render_with

    built = rebuild(task["answer"], task.get("code") or CodeFormat(), None)
    if not built.ok:
        return None
    job, target = task["job"], task["target"]
    kw = {}
    if job.rel_deflection is not None:
        kw["rel_deflection"] = job.rel_deflection
    if job.angular_deflection is not None:
        kw["angular"] = job.angular_deflection
    try:
        verts, tris = tessellate(built.shape, **kw)
        images = render_with(verts, tris, job.settings, tuple(job.views), nthreads=1)  # the stage's framing
    except Exception:  # a degenerate solid that cannot be drawn is not a candidate
        return None
    return silhouette_iou(target, {v: ink_mask(im, int(job.settings.size)) for v, im in images.items()})


def select_answers(pool, pictures: list, candidates: list[list[str]], code: CodeFormat, render_params: dict,
                   views: list | None = None, px: int = COMPARE_PX) -> list[Choice]:
    """For each picture, the candidate answer whose rebuilt part's views best match it.

    pictures: PIL images or uint8 arrays as the model saw them; candidates: per picture, its
    answers (greedy first); views: per picture the view drawn for a separate-layout model (None
    for a grid). Identical answers of one picture are built once.
    """
    job = compare_job(render_params, px)
    tasks: list[dict] = []
    keys: list[dict] = []
    for k, (picture, answers) in enumerate(zip(pictures, candidates)):
        target = target_masks(picture, job, views[k] if views else None)
        seen: dict = {}
        for answer in answers:
            if answer not in seen:
                seen[answer] = len(tasks)
                tasks.append({"answer": answer, "code": code, "job": job, "target": target})
        keys.append(seen)
    scores: list = [None] * len(tasks)
    for out in (pool.run(candidate_task, tasks) if tasks else ()):
        scores[out.index] = out.value if out.status == "ok" else None
    choices = []
    for answers, seen in zip(candidates, keys):
        per = [scores[seen[a]] for a in answers]
        best = max(range(len(answers)), key=lambda i: (-1.0 if per[i] is None else per[i], -i)) if answers else 0
        choices.append(Choice(best, answers[best] if answers else "", per,
                              sum(1 for a, t in seen.items() if scores[t] is not None)))
    return choices


def best_of(pool, picture, candidates: list[str], code: CodeFormat, render_params: dict,
            view: str | None = None, px: int = COMPARE_PX) -> Choice:
    """select_answers for one picture (what predict and serve call): the best of its candidates."""
    return select_answers(pool, [picture], [list(candidates)], code, render_params, [view] if view else None, px)[0]
