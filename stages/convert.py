"""DVC stage `convert`: extracted models + rendered pictures -> data/converted/{train,val,test}.json.

One sample per model (grid layout) or per model and view (separate layout, read from the render
stage's rendering_metadata.json); the answer is the model's code in `convert.format` (OpenECAD v2
or the compact format), recorded in data/converted/convert_info.json. What is written is
validated (pictures, answers parsing back); counts go to metrics/convert.json.
"""

import time
from pathlib import Path

from cadvlm.data.convert import ConvertConfig, convert
from cadvlm.params import load_params


def main() -> None:
    t0 = time.perf_counter()
    config = ConvertConfig.from_params(load_params())
    m = convert(Path("data/extracted"), Path("data/rendered"), Path("data/converted"), config,
                metrics_path=Path("metrics/convert.json"))
    skipped = ", ".join(f"{k} {v}" for k, v in m["skipped"].items()) or "none"
    print(f"convert ({m['layout']}, {m['code_format']}): samples {m['samples']}, skipped: {skipped}; "
          f"answer tokens {m['answer_tokens']}; {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
