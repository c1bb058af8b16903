"""What evaluation reports: per-method figures, the per-sample table, and the comparison sheet.

Figures are rounded to 6 significant digits and files written with fixed formatting, so the same
rows give the same bytes (DVC reruns nothing it need not, and `dvc metrics diff` shows only real
changes).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

from cadvlm.codec.format import CodeFormat
from cadvlm.eval.intervals import RESAMPLES, method_intervals
from cadvlm.eval.scoring import TRUTH_ERROR
from cadvlm.metrics import COMMAND_KEYS
from cadvlm.rebuild import INVALID_REASONS

CSV_FIELDS = ("id", "method", "status", "chamfer", "iou", "iou_exact") + COMMAND_KEYS + (
    "pred_extrudes", "truth_extrudes", "pred_curves", "truth_curves", "truth_ops", "truth_curve_types", "detail")
SHEET_VIEW_PX = 96  # one view; a sample shows the truth's 2x2 views beside the prediction's
SHEET_COLUMNS = 4


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.median(values), statistics.fmean(values)


def rounded(x, digits: int = 6):
    """Round for stable metrics files (same inputs, same bytes); None for missing or non-finite."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(f"{x:.{digits}g}")


def summarise(rows: list[dict], seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """Aggregate per-sample rows of one method into the metrics of DESIGN.md "Evaluation", with
    bootstrap 95% intervals (`cadvlm.eval.intervals`; seeded, `resamples` 0 = none)."""
    scored = [r for r in rows if r["status"] != TRUTH_ERROR]
    valid = [r for r in scored if r["status"] == "ok"]
    n = len(scored)
    by_reason = {k: 0 for k in INVALID_REASONS}
    for r in scored:
        if r["status"] != "ok":
            by_reason[r["status"]] = by_reason.get(r["status"], 0) + 1
    cd_med, cd_mean = _stats([r["chamfer"] for r in valid])
    iou_med, iou_mean = _stats([r["iou"] for r in valid])
    parsed = [r for r in scored if r["command"] is not None]
    out = {
        "n": n,
        "n_valid": len(valid),
        "invalid_ratio": rounded((n - len(valid)) / n) if n else None,
        "invalid_by_reason": by_reason,
        "chamfer_median": rounded(cd_med),
        "chamfer_mean": rounded(cd_mean),
        "iou_mean": rounded(iou_mean),
        "iou_median": rounded(iou_med),
        # IoU with every invalid sample counted as 0: one number that punishes both failures.
        "iou_mean_all": rounded(sum(r["iou"] for r in valid) / n) if n else None,
        "iou_inexact": sum(1 for r in valid if r["iou_exact"] is False),
        "n_parsed": len(parsed),
        "command_accuracy": {k: rounded(statistics.fmean(r[k] for r in parsed)) if parsed else None
                             for k in COMMAND_KEYS},
    }
    if resamples > 0:
        out.update(method_intervals([r["chamfer"] for r in valid], [r["iou"] for r in valid],
                                    [r["iou"] if r["status"] == "ok" else 0.0 for r in scored],
                                    [0.0 if r["status"] == "ok" else 1.0 for r in scored], seed, resamples,
                                    rounded))
    skipped = len(rows) - n
    if skipped:
        out["n_truth_errors"] = skipped
    return out


def summarise_methods(rows: list[dict], methods, seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """{method: summary} for the methods present in rows, in the given order."""
    return {m: summarise([r for r in rows if r["method"] == m], seed, resamples) for m in methods
            if any(r["method"] == m for r in rows)}


def write_rows_csv(rows: list[dict], path: Path) -> None:
    """The per-sample table (fixed formatting: the same rows give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        out = []
        for k in CSV_FIELDS:
            v = r.get(k)
            if v is None:
                out.append("")
            elif isinstance(v, bool):
                out.append(int(v))
            elif isinstance(v, float):
                out.append(f"{v:.6g}")
            elif k == "detail":
                out.append(" ".join(str(v).split())[:200])
            else:
                out.append(v)
        w.writerow(out)
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def format_summary(name: str, s: dict) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    def ci(key, k=1.0, spec=".3g"):
        v = s.get(key)
        return "" if not v else f" [{format(k * v[0], spec)}, {format(k * v[1], spec)}]"

    reasons = ", ".join(f"{k} {v}" for k, v in s["invalid_by_reason"].items() if v) or "none"
    ca = s["command_accuracy"]
    return (f"{name:>9}: n {s['n']:4d}  invalid {f(s['invalid_ratio'] and 100 * s['invalid_ratio'], '5.1f')}% "
            f"({reasons})  CD x1000 median {f(s['chamfer_median'], '.4f')}{ci('chamfer_median_ci95')} "
            f"mean {f(s['chamfer_mean'], '.4f')}  "
            f"IoU mean {f(s['iou_mean'] and 100 * s['iou_mean'], '.1f')}%{ci('iou_mean_ci95', 100, '.1f')}  "
            f"cmd acc {f(ca['command'], '.3f')} (parsed {s['n_parsed']})")


# --------------------------------------------------------------------------------------------
# the comparison sheet: truth views beside the prediction's, best and worst samples
# --------------------------------------------------------------------------------------------


def pick_for_sheet(rows: list[dict], k: int) -> list[dict]:
    """The k/2 best and k/2 worst valid samples by Chamfer distance (best first, worst last);
    when fewer are valid, invalid samples fill the remaining places (their reason is shown)."""
    if k <= 0:
        return []
    valid = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (r["chamfer"], r["id"]))
    if len(valid) > k:
        valid = valid[: k - k // 2] + valid[len(valid) - k // 2:]
    invalid = sorted((r for r in rows if r["status"] not in ("ok", TRUTH_ERROR)), key=lambda r: (r["status"], r["id"]))
    return valid + invalid[: k - len(valid)]


def views_task(task: dict) -> dict:
    """2x2 view grids (uint8) of the truth and of the answer's solid (None when it does not build)."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.geometry.solid import build_solid
    from cadvlm.rebuild import grid_picture, rebuild

    size = task.get("size", SHEET_VIEW_PX)
    out = {"truth": None, "pred": None}
    try:
        out["truth"] = grid_picture(build_solid(read_model(task["truth"], task["id"])), size)
    except Exception:
        pass
    if task.get("answer"):
        built = rebuild(task["answer"], task.get("code") or CodeFormat(), None)
        if built.ok:
            try:
                out["pred"] = grid_picture(built.shape, size)
            except Exception:
                pass
    return out


def write_sheet(items: list[tuple[dict, str, str]], path: Path, pool, code: CodeFormat,
                size: int = SHEET_VIEW_PX) -> None:
    """A PNG: per sample (row, answer, truth path), the truth's views beside the prediction's,
    captioned with id and scores."""
    from PIL import Image, ImageDraw

    tasks = [{"id": r["id"], "answer": a if r["status"] == "ok" else "", "truth": t, "size": size, "code": code}
             for r, a, t in items]
    grids: list = [None] * len(tasks)
    for out in (pool.run(views_task, tasks) if tasks else ()):
        grids[out.index] = out.value if out.status == "ok" else None
    g = 2 * size
    cap = 14
    cell_w, cell_h = 2 * g + 6, g + cap + 6
    cols = max(1, min(SHEET_COLUMNS, len(items)))
    rows_n = max(1, math.ceil(len(items) / cols))
    sheet = Image.new("L", (cols * cell_w, rows_n * cell_h + 18), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), "left: ground truth  |  right: prediction  (best Chamfer first, worst last)", fill=0)
    for n, ((row, _, _), grid) in enumerate(zip(items, grids)):
        x0, y0 = (n % cols) * cell_w, 18 + (n // cols) * cell_h
        grid = grid or {}
        for k, key in enumerate(("truth", "pred")):
            im = grid.get(key)
            bx = x0 + k * g + 2
            if im is not None:
                sheet.paste(Image.fromarray(im), (bx, y0 + cap))
            else:
                draw.rectangle([bx, y0 + cap, bx + g - 1, y0 + cap + g - 1], outline=160, fill=235)
                draw.text((bx + 6, y0 + cap + g // 2 - 6), row["status"] if key == "pred" else "no truth", fill=60)
        draw.line([x0 + g + 2, y0 + cap, x0 + g + 2, y0 + cap + g - 1], fill=70, width=2)  # truth | prediction
        draw.rectangle([x0, y0, x0 + cell_w - 3, y0 + cell_h - 3], outline=120)
        if row["status"] == "ok":
            caption = f"{row['id']}  CD {row['chamfer']:.3g}  IoU {row['iou']:.2f}"
        else:
            caption = f"{row['id']}  invalid: {row['status']}"
        draw.text((x0 + 3, y0 + 1), caption[:48], fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=False)
