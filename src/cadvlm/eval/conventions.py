"""The same scores counted the ways other papers count them, each labelled, beside the default.

Published image-to-CAD figures are not all computed alike, so a folder of predictions scored
only one way cannot be set beside every table. `cadvlm score` reports the default (cadrille's and
CAD-Recode's protocol: each solid normalised into the unit cube on its own, 8,192 points, Chamfer
x1000 median and mean over valid predictions, IoU, invalid = share of predictions without a valid
solid) and, from the same per-prediction rows, these:

- `per_shape`: with several predictions per shape (test-time sampling), a shape is invalid only
  when none of its predictions gives a valid solid;
- `best_of_n`: each shape's best valid prediction by Chamfer against the truth. The choice looks at
  the truth, so it is an upper bound (papers' best-of-N), not a method;
- `deepcad_scale` (with --deepcad-scale): Chamfer in DeepCAD's frame (`metrics.chamfer_deepcad`),
  meaningful only for code written in the truth's own frame.
"""

from __future__ import annotations

import re
import statistics

from cadvlm.eval.report import rounded
from cadvlm.eval.scoring import TRUTH_ERROR

# <shape id>_<k> or <shape id>/<k>: the k-th prediction for one shape
_SAMPLE_SUFFIX = re.compile(r"(.+?)(?:_|/)(\d{1,4})\Z")


def shape_id(prediction_id: str, known) -> str | None:
    """The shape a prediction is for: itself when `known(id)`, else its id without a trailing
    `_<k>` or `/<k>` when that is known; None when neither is."""
    if known(prediction_id):
        return prediction_id
    m = _SAMPLE_SUFFIX.match(prediction_id)
    return m.group(1) if m and known(m.group(1)) else None


def convention_figures(rows: list[dict], shape_of: dict[str, str]) -> dict:
    """{convention: figures} from score rows of one method (row["id"] = prediction id)."""
    scored = [r for r in rows if r["status"] != TRUTH_ERROR]
    by_shape: dict[str, list[dict]] = {}
    for r in scored:
        by_shape.setdefault(shape_of.get(r["id"], r["id"]), []).append(r)
    n_shapes = len(by_shape)
    best = []
    for preds in by_shape.values():
        valid = [r for r in preds if r["status"] == "ok"]
        if valid:
            best.append(min(valid, key=lambda r: (r["chamfer"], r["id"])))
    out = {
        "per_prediction": {"n": len(scored),
                           "invalid_ratio": rounded(sum(r["status"] != "ok" for r in scored) / len(scored))
                           if scored else None},
        "per_shape": {"n_shapes": n_shapes, "predictions_per_shape_max": max(map(len, by_shape.values()), default=0),
                      "invalid_ratio": rounded(1 - len(best) / n_shapes) if n_shapes else None},
        "best_of_n": {"n_shapes": n_shapes, "n_valid": len(best),
                      "chamfer_median": rounded(statistics.median(r["chamfer"] for r in best)) if best else None,
                      "chamfer_mean": rounded(statistics.fmean(r["chamfer"] for r in best)) if best else None,
                      "iou_mean": rounded(statistics.fmean(r["iou"] for r in best if r["iou"] is not None))
                      if any(r["iou"] is not None for r in best) else None},
    }
    deep = [r["chamfer_deepcad"] for r in scored if r["status"] == "ok" and r.get("chamfer_deepcad") is not None]
    if deep:
        out["deepcad_scale"] = {"n_valid": len(deep), "chamfer_median": rounded(statistics.median(deep)),
                                "chamfer_mean": rounded(statistics.fmean(deep))}
    return out


def format_conventions(figs: dict) -> str:
    """Lines for the terminal."""
    def f(x, spec=".3g"):
        return "-" if x is None else format(x, spec)

    ps, bo = figs["per_shape"], figs["best_of_n"]
    lines = [f"  invalid per prediction {f(figs['per_prediction']['invalid_ratio'], '.1%')} "
             f"({figs['per_prediction']['n']} predictions); per shape {f(ps['invalid_ratio'], '.1%')} "
             f"({ps['n_shapes']} shapes, up to {ps['predictions_per_shape_max']} predictions each)",
             f"  best of N (chosen against the truth: an upper bound): Chamfer x1000 median {f(bo['chamfer_median'])}"
             f" mean {f(bo['chamfer_mean'])}, IoU mean {f(bo['iou_mean'])}"]
    if "deepcad_scale" in figs:
        d = figs["deepcad_scale"]
        lines.append(f"  DeepCAD scale (truth's frame, largest |coordinate| 0.75): Chamfer x1000 median "
                     f"{f(d['chamfer_median'])} mean {f(d['chamfer_mean'])}")
    return "\n".join(lines)
