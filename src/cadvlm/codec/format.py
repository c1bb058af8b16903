"""`CodeFormat`: which language the answers are written in, as one value.

A model is trained on one language (OpenECAD v2, CadQuery Python, or the compact grid at some
number of bits) and
must be read back in the same one by everything downstream: convert writes it into
convert_info.json, train copies it into the model folder's manifest, and evaluate, predict, score
and serve take it from there. One object carries the pair (name, bits) and knows how to write,
parse and pick the code out of an answer, so nobody threads `(fmt, bits)` through signatures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cadvlm.cad.model import CADError, CADModel
from cadvlm.codec.answer import answer_code, wrap_answer
from cadvlm.codec.cadquery_reader import parse_cadquery
from cadvlm.codec.compact import DEFAULT_BITS, MAX_BITS, MIN_BITS, parse_compact, write_compact
from cadvlm.codec.openecad_parser import parse_code
from cadvlm.codec.openecad_writer import write_code

FORMATS = ("openecad", "compact", "cadquery")


@dataclass(frozen=True)
class CodeFormat:
    """A code language: 'openecad' (OpenECAD v2, millimetres), 'cadquery' (CadQuery Python,
    millimetres; read from its syntax tree, never run) or 'compact' (a 2**bits grid)."""

    name: str = "openecad"
    bits: int = DEFAULT_BITS  # compact only; kept at the default for OpenECAD
    # compact only: curves in the longest loop of the training answers (convert measures it), so
    # kept decoding can close a loop where the data always did; None = no cap. Not part of the
    # language's identity: two formats with the same name and bits read the same code.
    max_loop_curves: int | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.name not in FORMATS:
            raise ValueError(f"code format must be one of {FORMATS}, not {self.name!r}")
        bits = int(self.bits)
        if not MIN_BITS <= bits <= MAX_BITS:
            raise ValueError(f"compact bits must be in {MIN_BITS}..{MAX_BITS}, not {self.bits}")
        object.__setattr__(self, "bits", bits)

    @property
    def compact(self) -> bool:
        return self.name == "compact"

    def write(self, model: CADModel, compat: bool = False) -> str:
        """The model's code (compat: OpenECAD's mirrored frames, OpenECAD only)."""
        if self.name == "cadquery":
            from cadvlm.codec.cadquery_writer import write_cadquery

            return write_cadquery(model)
        return write_compact(model, self.bits) if self.compact else write_code(model, compat=compat)

    def parse(self, code: str, model_id: str | None = None) -> CADModel:
        """Code -> CADModel, never executed (CodeParseError / CADError on bad code)."""
        if self.name == "cadquery":
            return parse_cadquery(code, model_id)
        return parse_compact(code, model_id, self.bits) if self.compact else parse_code(code, model_id)

    def code_of(self, answer) -> str:
        """The code inside a chat answer (or the bare code); CADError no_code / parse_error."""
        return answer_code(answer, self.name)

    def parse_answer(self, answer, model_id: str | None = None) -> CADModel:
        try:
            return self.parse(self.code_of(answer), model_id)
        except CADError as exc:
            raise exc.with_id(model_id) if model_id else exc

    def answer(self, model: CADModel, compat: bool = False) -> str:
        """The chat answer a model is trained to give for this part."""
        return wrap_answer(self.write(model, compat))

    def to_json(self) -> dict:
        out = {"code_format": self.name, "compact_bits": self.bits}
        if self.max_loop_curves is not None:
            out["max_loop_curves"] = self.max_loop_curves
        return out

    @classmethod
    def from_json(cls, info: dict) -> "CodeFormat":
        """From a dict with `code_format` / `compact_bits` (convert_info.json, the model manifest)."""
        longest = info.get("max_loop_curves")
        return cls(str(info.get("code_format", "openecad")), int(info.get("compact_bits", DEFAULT_BITS)),
                   None if longest is None else int(longest))

    def describe(self) -> str:
        return {"compact": f"compact ({self.bits} bits)", "cadquery": "CadQuery"}.get(self.name, "OpenECAD v2")


def read_converted_format(converted_dir) -> CodeFormat:
    """The format a converted dataset folder was written in (convert_info.json); OpenECAD when unsaid."""
    path = Path(converted_dir) / "convert_info.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return CodeFormat()
    return CodeFormat.from_json(info)


# The model folder's manifest (written by the train stage, read in full by cadvlm.model.manifest)
# records the format under the same keys as convert_info.json.
MODEL_MANIFEST = "cadvlm_model.json"


def model_folder_format(model_dir) -> CodeFormat | None:
    """The format a trained model folder writes, or None when the folder does not say."""
    try:
        info = json.loads((Path(model_dir) / MODEL_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return CodeFormat.from_json(info) if isinstance(info, dict) and "code_format" in info else None


def add_format_arguments(p) -> None:
    """--format / --bits / --model for commands that read or write code."""
    p.add_argument("--format", choices=FORMATS,
                   help="code language (default: the one the --model folder was trained on, else openecad)")
    p.add_argument("--bits", type=int, help="compact only: the grid's bits (default: the model folder's, else 8)")
    p.add_argument("--model", dest="model_dir", type=Path, default=Path("models"),
                   help="trained model folder whose language is the default (default: models)")


def format_from_arguments(args) -> CodeFormat:
    """--format/--bits, else the model folder's format, else OpenECAD v2 (ValueError on bad values)."""
    default = model_folder_format(args.model_dir) or CodeFormat()
    name = args.format or default.name
    bits = args.bits if args.bits is not None else (default.bits if name == default.name else DEFAULT_BITS)
    return CodeFormat(name, bits)
