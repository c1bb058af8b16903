"""`cadvlm preset FILE`: a recipe of params.yaml overrides (presets/*.yaml) as one `dvc exp run`.

A preset is a YAML file shaped like params.yaml holding only the keys it sets (presets/openecad.yaml:
OpenECAD's fine-tuning recipe). Every key must exist in params.yaml and every value must have the
type the key has there, checked as the serve experiment endpoint checks a request
(cadvlm.serve.experiments.check_overrides), so a preset that no longer fits params.yaml fails
before anything runs. The result is the `dvc exp run -S key=value ...` command: printed, shell-quoted
(copy it, or review it), or run with --run. `--set KEY=VALUE` adds or overrides keys (YAML values:
`--set model.base=/models/openecad`, `--set train.epochs=2`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from cadvlm.dotted_keys import flatten


class PresetError(ValueError):
    """A preset that does not fit params.yaml; the message names the key."""


def load_preset(path: str | Path) -> dict:
    """The preset's overrides as {dotted key: value}."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PresetError(f"{path}: no such preset file") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: not YAML ({exc})") from None
    if not isinstance(tree, dict) or not tree:
        raise PresetError(f"{path}: a preset is a non-empty mapping shaped like params.yaml")
    return flatten(tree)


def exp_run_args(params: dict, overrides: dict) -> list[str]:
    """The `-S key=value` arguments; PresetError for a key params.yaml lacks or a value of another type."""
    from cadvlm.serve.experiments import MAX_OVERRIDES, ExperimentError, check_overrides

    args = []
    items = list(overrides.items())
    for start in range(0, len(items), MAX_OVERRIDES):  # the serve check caps one request, not a preset
        try:
            args += [_unquote_plain(a) for a in check_overrides(params, dict(items[start:start + MAX_OVERRIDES]))]
        except ExperimentError as exc:
            raise PresetError(str(exc)) from None
    return args


_PLAIN = re.compile(r"'([A-Za-z_/][A-Za-z0-9_./-]*)'")
_KEYWORDS = {"true", "false", "null", "nan", "inf"}


def _unquote_plain(arg: str) -> str:
    """Hydra needs no quotes around a plain word or path (`lora`, `/models/x`): drop them, for a command
    a person can read. Words Hydra would read as another type (`true`, `null`...) keep them."""
    return _PLAIN.sub(lambda m: m.group(1) if m.group(1).lower() not in _KEYWORDS else m.group(0), arg)


def parse_sets(sets: list[str]) -> dict:
    out = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise PresetError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def add_arguments_preset(p) -> None:
    p.description = __doc__.splitlines()[0]
    p.add_argument("preset", help="preset file, e.g. presets/openecad.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one more override (YAML value), e.g. model.base=/models/openecad; may repeat")
    p.add_argument("--params", default="params.yaml", help="the params file the keys must exist in")
    p.add_argument("--run", action="store_true", help="run `dvc exp run` with the overrides (default: print it)")
    p.add_argument("--queue", action="store_true", help="with --run: queue the experiment (dvc exp run --queue)")
    p.add_argument("-n", "--name", default=None, help="experiment name (dvc exp run -n)")


def cmd_preset(args) -> int:
    try:
        params = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        overrides = {**load_preset(args.preset), **parse_sets(args.set)}
        cmd = ["dvc", "exp", "run"] + (["--queue"] if args.queue else []) + \
            (["-n", args.name] if args.name else []) + exp_run_args(params, overrides)
    except (OSError, PresetError) as exc:
        print(f"cadvlm preset: {exc}", file=sys.stderr)
        return 2
    print(shlex.join(cmd))
    if not args.run:
        return 0
    return subprocess.run(cmd).returncode
