"""Where a method does well and where it fails: the per-sample table grouped by kind of part.

The synthetic generator's JSON does not record which features it drew (the feature names live
only in the synthesize stage's aggregate counts), and real DeepCAD has none, so a part's kind is
derived from its ground-truth construction sequence, the same way for both:
- `extrudes`: number of extrudes, 1, 2, 3, 4+;
- `curves`: number of sketch curves, in bins 1-4, 5-8, 9-16, 17-32, 33+;
- `operations`: the booleans after the first extrude, as a set: `single` (one extrude), `join`
  (NewBody or Join), `cut`, `intersect`, or combinations such as `cut+join`;
- `curve_types`: the set of curve types in the sketches: `line`, `circle`, `arc+line`, ...
The scoring workers write the truth's counts and both kinds on every row (`truth_extrudes`,
`truth_curves`, `truth_ops`, `truth_curve_types`), so the table is made from `samples.csv` alone.

Outputs: a DVC metric (`{family: {group: {method: {n, invalid_ratio, chamfer_median, iou_mean}}}}`,
so `dvc metrics diff` names the group that moved) and a wide CSV, one row per group with each
method's figures side by side, for `dvc plots` (bars of the model's median Chamfer by group).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

FAMILIES = ("extrudes", "curves", "operations", "curve_types")
CURVE_BINS = ((1, 4), (5, 8), (9, 16), (17, 32), (33, None))
FIGURES = ("n", "n_valid", "invalid_ratio", "chamfer_median", "iou_mean")
_OP_KIND = {"NEW_BODY": "join", "JOIN": "join", "CUT": "cut", "INTERSECT": "intersect"}


def operations_kind(model) -> str:
    """The booleans after the first extrude of a CADModel, as a sorted '+'-joined set ('single' for one)."""
    kinds = sorted({_OP_KIND[e.operation.name] for e in model.extrudes[1:]})
    return "+".join(kinds) if kinds else "single"


def curve_types_kind(model) -> str:
    """The curve types in a CADModel's sketches, as a sorted '+'-joined set ('none' without curves)."""
    kinds = sorted({type(c).__name__.lower() for e in model.extrudes for lp in e.profile.loops for c in lp.curves})
    return "+".join(kinds) if kinds else "none"


def extrudes_group(n) -> str | None:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return None
    n = int(n)
    return str(n) if n < 4 else "4+"


def curves_group(n) -> str | None:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return None
    n = int(n)
    for lo, hi in CURVE_BINS:
        if n >= lo and (hi is None or n <= hi):
            return f"{lo}+" if hi is None else f"{lo}-{hi}"
    return "0"


def _rounded(x, digits: int = 6):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(f"{float(x):.{digits}g}")


def family_table(samples):
    """Long table (pandas DataFrame): family, group, method and the FIGURES, from the per-sample
    rows (a DataFrame read from samples.csv, or a list of row dicts). Truth errors are left out,
    as in the summaries; a group's figures are over its valid samples, its invalid ratio over all."""
    import pandas as pd

    df = samples.copy() if isinstance(samples, pd.DataFrame) else pd.DataFrame(list(samples))
    df = df[df["status"] != "truth_error"].copy()
    df["status"] = df["status"].fillna("")
    keys = {"extrudes": df["truth_extrudes"].map(extrudes_group), "curves": df["truth_curves"].map(curves_group),
            "operations": df.get("truth_ops"), "curve_types": df.get("truth_curve_types")}
    parts = []
    for family in FAMILIES:
        key = keys[family]
        if key is None:
            continue
        sub = df.assign(group=key.astype("object").where(key.notna(), None)).dropna(subset=["group"])
        sub = sub.assign(valid=sub["status"] == "ok")
        for (group, method), g in sub.groupby(["group", "method"], sort=True):
            ok = g[g["valid"]]
            parts.append({"family": family, "group": str(group), "method": method, "n": int(len(g)),
                          "n_valid": int(len(ok)), "invalid_ratio": _rounded(1.0 - len(ok) / len(g)),
                          "chamfer_median": _rounded(ok["chamfer"].astype(float).median()) if len(ok) else None,
                          "iou_mean": _rounded(ok["iou"].astype(float).mean()) if len(ok) else None})
    return pd.DataFrame(parts, columns=["family", "group", "method"] + list(FIGURES))


def _group_order(family: str, group: str):
    """Numeric groups in numeric order (1, 2, 3, 4+; 1-4 before 17-32), others alphabetically."""
    head = group.split("-")[0].rstrip("+")
    return (0, int(head), group) if head.isdigit() else (1, 0, group)


def families_metrics(table) -> dict:
    """{family: {group: {method: {figures}}}} from family_table (plain JSON types)."""
    out: dict = {}
    for rec in table.to_dict("records"):
        fig = {k: (None if rec[k] is None or (isinstance(rec[k], float) and math.isnan(rec[k])) else rec[k])
               for k in FIGURES}
        fig["n"], fig["n_valid"] = int(fig["n"]), int(fig["n_valid"])
        out.setdefault(rec["family"], {}).setdefault(rec["group"], {})[rec["method"]] = fig
    return out


def families_wide_csv(table, methods) -> str:
    """One row per (family, group): `label` (family=group), n, then each method's figures side by side."""
    import csv
    import io

    rows: dict = {}
    for rec in table.to_dict("records"):
        key = (rec["family"], rec["group"])
        row = rows.setdefault(key, {"family": rec["family"], "group": rec["group"],
                                    "label": f"{rec['family']}={rec['group']}", "n": int(rec["n"])})
        for k in ("invalid_ratio", "chamfer_median", "iou_mean"):
            row[f"{rec['method']}_{k}"] = rec[k]
    order = sorted(rows, key=lambda k: (FAMILIES.index(k[0]) if k[0] in FAMILIES else 99, _group_order(*k)))
    fields = ["family", "group", "label", "n"] + [f"{m}_{k}" for m in methods
                                                   for k in ("invalid_ratio", "chamfer_median", "iou_mean")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for key in order:
        w.writerow(["" if (v := rows[key].get(f)) is None or (isinstance(v, float) and math.isnan(v))
                    else (f"{v:.6g}" if isinstance(v, float) else v) for f in fields])
    return buf.getvalue()


def write_families(samples_csv: Path, metrics_path: Path, csv_path: Path, methods) -> dict:
    """Read the per-sample table with pandas and write the families metric and plot files."""
    import pandas as pd

    table = family_table(pd.read_csv(samples_csv, dtype={"id": str, "status": str, "detail": str},
                                     keep_default_na=True))
    metrics = families_metrics(table)
    present = [m for m in methods if m in set(table["method"])]
    for path, text in ((metrics_path, json.dumps(metrics, indent=1, sort_keys=True) + "\n"),
                       (csv_path, families_wide_csv(table, present))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return metrics
