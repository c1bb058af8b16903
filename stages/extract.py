"""DVC stage `extract`: a validated, deterministic subset of data.raw_dir -> data/extracted/."""

import json
from pathlib import Path

from cadvlm.cad.limits import Limits
from cadvlm.extract import ExtractConfig, extract
from cadvlm.params import load_params


def main() -> None:
    params = load_params()
    d = params["data"]
    cfg = ExtractConfig(
        raw_dir=Path(d["raw_dir"]),
        out_dir=Path("data/extracted"),
        sizes={"train": d["train_size"], "validation": d["val_size"], "test": d["test_size"]},
        seed=params["base"]["seed"],
        split_file=Path(d["split_file"]) if d.get("split_file") else None,
        limits=Limits(d["max_extrudes"], d["max_loops"], d["max_curves"], d["max_commands"]),
        workers=d.get("workers", 2), timeout_s=d.get("timeout_s", 60),
    )
    m = extract(cfg)
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/extract.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    print(f"extract: {m['selected']}; {m['files_parsed']} parsed, {m['solids_built']} built; skipped {m['skipped']}")


if __name__ == "__main__":
    main()
