"""Foundation speed: DeepCAD JSON parse + validate (no solid), and exact solid builds, one core.

Usage: python benchmarks/bench_cad.py [--dir FOLDER] [--repeat N]
Default data: the real samples in ../shared/deepcad/json within the DeepCAD limits, plus
synthetic models when data/raw/synthetic exists.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.limits import check_limits
from cadvlm.cad.model import CADError
from cadvlm.geometry.solid import build_solid

ROOT = Path(__file__).resolve().parents[1]


def load_texts(folders: list[Path]) -> list[tuple[str, dict]]:
    """Pre-decoded JSON is not what we time: reading the text is part of parsing."""
    out = []
    for folder in folders:
        for p in sorted(folder.rglob("*.json")):
            out.append((p.stem, p.read_text()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", action="append", type=Path)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--max-build", type=int, default=300)
    args = ap.parse_args()
    folders = args.dir or [p for p in (ROOT.parent / "shared/deepcad/json", ROOT / "data/raw/synthetic") if p.is_dir()]
    texts = load_texts(folders)
    ok = []
    for mid, text in texts:
        try:
            m = read_model(json.loads(text), mid)
            check_limits(m)
            ok.append((mid, text))
        except CADError:
            pass
    print(f"data: {len(texts)} files from {', '.join(map(str, folders))}; {len(ok)} within the DeepCAD limits")

    t0 = time.perf_counter()
    n = 0
    for _ in range(args.repeat):
        for mid, text in ok:
            check_limits(read_model(json.loads(text), mid))
            n += 1
    dt = time.perf_counter() - t0
    print(f"parse + validate (no solid): {n / dt:,.0f} models/s on one core ({dt / n * 1e6:.0f} us/model)")

    models = [read_model(json.loads(t), mid) for mid, t in ok[: args.max_build]]
    t0 = time.perf_counter()
    for m in models:
        build_solid(m)
    dt = time.perf_counter() - t0
    ext = sum(len(m.extrudes) for m in models) / len(models)
    print(f"solid build (with face unification and shape check): {len(models) / dt:,.1f} models/s on one core "
          f"({dt / len(models) * 1e3:.1f} ms/model, {ext:.2f} extrudes/model on average)")
    t0 = time.perf_counter()
    for m in models:
        build_solid(m, unify=False)
    dt = time.perf_counter() - t0
    print(f"solid build without unification: {len(models) / dt:,.1f} models/s")


if __name__ == "__main__":
    main()
