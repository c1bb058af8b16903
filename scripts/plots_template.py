"""Write a DVC plots HTML template that carries vega, vega-lite and vega-embed inside the page.

Why: the page `dvc plots show` / `dvc plots diff` writes loads those three libraries from a CDN
(dvc_render's `{scripts}` placeholder), so on a machine without internet the plots stay blank.
This template leaves `{scripts}` out and inlines instead the minified builds npm installed into
web/node_modules (pinned by web/package.json to the majors dvc_render names), which makes every
page self-contained: it draws offline, wherever it is written (`-o` included) or copied.

scripts/setup.sh runs this after `npm ci` and then points DVC at the result with
`dvc config --local plots.html_template` (a machine-local setting: a committed one that names a
missing file makes `dvc plots show` fail). The output is generated, git-ignored and never
committed: it is third-party code. Run it again after changing the pinned versions.

Usage: python scripts/plots_template.py [--node-modules web/node_modules] [--out web/dvc_plots_template.html]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("vega", "vega-lite", "vega-embed")  # in load order: vega-lite needs vega, vega-embed both
PLACEHOLDERS = ("{plot_divs}", "{refresh_tag}", "{scripts}")  # dvc_render str.replace()s these anywhere

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- {note} -->
{libraries}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def library_script(node_modules: Path, name: str) -> tuple[str, str]:
    """The `<script>` element that inlines one library's minified UMD build, and its version."""
    package = node_modules / name
    build = package / "build" / f"{name}.min.js"
    if not build.is_file():
        raise FileNotFoundError(f"{build} is missing: run `npm ci` in web/ (scripts/setup.sh does)")
    version = json.loads((package / "package.json").read_text(encoding="utf8"))["version"]
    code = build.read_text(encoding="utf8")
    code = re.sub(r"^//# sourceMappingURL=.*$", "", code, flags=re.MULTILINE)  # no .map beside the page
    code = re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)  # must not end the element early
    for placeholder in PLACEHOLDERS:
        if placeholder in code:
            raise ValueError(f"{build} contains {placeholder}, which DVC would replace inside the code")
    return f"    <script>/* {name} {version} */\n{code}\n    </script>", version


def render(node_modules: Path) -> str:
    """The whole template: DVC's own page layout with the libraries inline and no `{scripts}`."""
    scripts, versions = [], []
    for name in LIBRARIES:
        script, version = library_script(node_modules, name)
        scripts.append(script)
        versions.append(f"{name} {version}")
    note = (f"DVC plots template made by scripts/plots_template.py from web/node_modules ({', '.join(versions)}); "
            "the libraries are inline so the page draws without a network")
    return PAGE.format(note=note, libraries="\n".join(scripts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node-modules", type=Path, default=ROOT / "web" / "node_modules")
    parser.add_argument("--out", type=Path, default=ROOT / "web" / "dvc_plots_template.html")
    args = parser.parse_args(argv)
    try:
        page = render(args.node_modules)
    except (FileNotFoundError, ValueError) as e:
        print(f"plots_template: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(page, encoding="utf8")
    tmp.replace(args.out)  # never a half-written template for DVC to read
    print(f"plots_template: wrote {args.out} ({len(page) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
