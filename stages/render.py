"""DVC stage `render`: data/extracted/ -> data/rendered/ (PNG views, index, metadata), incrementally:
a model whose JSON and render params did not change is not rendered again (cadvlm.render.stage)."""

from pathlib import Path

from cadvlm.parallel import ParallelConfig
from cadvlm.params import load_params
from cadvlm.render.pipeline import RenderJob
from cadvlm.render.stage import run_render

EXTRACTED = Path("data/extracted")
OUT_DIR = Path("data/rendered")
METRICS = Path("metrics/render.json")


def main() -> None:
    params = load_params()
    p = dict(params.get("render", {}))
    workers = int(p.pop("workers", 2))
    timeout_s = float(p.pop("timeout_s", 120))
    m = run_render(EXTRACTED, OUT_DIR, RenderJob.from_params(p), workers=workers, metrics_path=METRICS,
                   timeout_s=timeout_s, parallel=ParallelConfig.from_params(params))
    run = m["this_run"]
    print(f"render: {m['rendered']}/{m['models']} models have pictures, {m['failed']} failed "
          f"{m['failed_by_reason'] or ''}; this run rendered {run['rendered']}, reused {run['reused']}, "
          f"removed {run['removed_files']} files in {run['seconds']} s")


if __name__ == "__main__":
    main()
