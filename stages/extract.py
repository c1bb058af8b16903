"""DVC stage `extract`: a validated, deterministic subset of data.raw_dir -> data/extracted/.

`data.source` says what the folder is: DeepCAD JSON files (`synthetic`, `deepcad`) or an OpenECAD
dataset set (`openecad`: data.json + pictures; its answers are parsed, its pictures kept).
"""

import json
from pathlib import Path

from cadvlm.extract import ExtractConfig, extract
from cadvlm.params import load_params


def main() -> None:
    m = extract(ExtractConfig.from_params(load_params()))
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/extract.json").write_text(json.dumps(m, indent=1, sort_keys=True) + "\n")
    refused = f"; refused records {m['refused_records']}" if m.get("refused_records") else ""
    print(f"extract ({m['source']}): {m['selected']}; {m['files_parsed']} parsed, {m['solids_built']} built; "
          f"skipped {m['skipped']}{refused}")


if __name__ == "__main__":
    main()
