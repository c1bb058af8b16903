"""OpenECAD v2 code -> canonical model, without ever executing the text.

Model output is untrusted, so the code is read as data. Python's ``ast`` module parses it and only
these statement forms are accepted, one per logical line (see DESIGN.md "CAD code"):

    Loops{i} = []                          Curves{i}_{j} = []
    Line{i}_{j}_{k} = add_line(start= [u, v], end= [u, v])
    Arc{i}_{j}_{k} = add_arc(start= [u, v], end= [u, v], mid= [u, v])
    Circle{i}_{j}_{k} = add_circle(center= [u, v], radius= r)
    Loop{i}_{j} = add_loop(Curves{i}_{j})  Profile{i} = add_profile(Loops{i})
    SketchPlane{i} = add_sketchplane(origin= [x, y, z], normal= [x, y, z], x_axis= [x, y, z])
    SketchPlane{i} = add_sketchplane_ref(Extrude{k}, origin= [u, v], type= "sameplane" |
        "extent_one" | "extent_two" | "line", line= Line.., reverse= True, angle= <angle>)
    Sketch{i} = add_sketch(sketch_plane= SketchPlane{i}, profile= Profile{i})
    Extrude{i} = add_extrude(sketch= Sketch{i}, operation= 0..3, type= 0..2, extent_one= d, extent_two= d)

Arguments bind like a Python call (positional or keyword). Values are literal numbers (a sign
allowed), lists of them, the strings and booleans above, earlier names, and for ``angle`` a small
arithmetic expression of numbers and ``np.pi``. Everything else - imports, other names or
attributes, other calls, loops, comprehensions, huge literals or texts - is a `CodeParseError`
naming the line. Curves go to the most recent ``Curves`` list and loops to the most recent ``Loops``
list, as in OpenECAD's interpreter; a program must end with an ``add_extrude`` (a cut-off answer
is an error, not a smaller model).

Meaning: millimetres in, metres out (the canonical unit). Sketch-plane references follow
codec.planes (OpenECAD's definition with true frames). Loops are ordered as OpenECAD's interpreter
orders them (codec.deepcad_order): outer loop first by bounding box, and each loop reordered in
place so a ``Line`` named by a later "line" reference has the direction OpenECAD gives it. Geometry
errors (a loop that does not close, a zero-length line, a zero-depth extrude, a degenerate plane)
are `CADError`s with the reader's reasons, also naming the line.

Speed: ``ast.parse`` alone costs ~0.2 ms per typical answer, so a strict regular-expression front
end reads the exact forms the writer prints and hands every statement to the same executor; any
statement it does not recognise, and any error, sends the whole program to the ``ast`` front end,
which is the authority (tests check that both give the same result on real and fuzzed programs).

Modules: this one holds the entry point (`parse_code`) and the size limits checked before any
reading; codec.openecad_exec the semantics (signatures, executor), codec.openecad_build the
model building (loops, units), codec.openecad_ast and codec.openecad_fast the two front ends.
"""

from __future__ import annotations

from cadvlm.cad.model import CADError, CADModel
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.openecad_ast import AstFront
from cadvlm.codec.openecad_build import build_model
from cadvlm.codec.openecad_exec import Executor
from cadvlm.codec.openecad_fast import Fallback, run_fast

MAX_CHARS = 1_000_000  # the largest real DeepCAD answer is ~50 KB
MAX_LINES = 20_000
MAX_LINE_CHARS = 2_000  # also bounds literal sizes and the expression depth handed to ast


def check_code_size(text, max_line_chars: int = MAX_LINE_CHARS) -> list[str]:
    """The code's lines, once its sizes are checked (before any parser sees it): text, characters,
    lines, the longest line, no NUL. Every reader of Python-like code calls it with its own
    `max_line_chars` (CadQuery writes a whole sketch on one line)."""
    if not isinstance(text, str):
        raise CodeParseError(f"code must be text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise CodeParseError(f"code of {len(text)} characters exceeds the limit of {MAX_CHARS}")
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise CodeParseError(f"code of {len(lines)} lines exceeds the limit of {MAX_LINES}")
    if max(map(len, lines)) > max_line_chars:
        k = next(k for k, ln in enumerate(lines) if len(ln) > max_line_chars)
        raise CodeParseError(f"line longer than {max_line_chars} characters", k + 1)
    if "\x00" in text:
        raise CodeParseError("code contains a NUL character", text[: text.index("\x00")].count("\n") + 1)
    return lines


def parse_code(text: str, model_id: str | None = None, fast: bool = True) -> CADModel:
    """Read OpenECAD v2 code into a CADModel (metres). CodeParseError / CADError on bad code.

    fast=False forces the ast front end (the fast one is only an accelerator; tests compare them).
    """
    try:
        lines = check_code_size(text)
        model = None
        if fast:
            try:
                ex = Executor()
                run_fast(lines, ex)
                model = build_model(ex.finish(), model_id)
            except (Fallback, CADError):
                model = None  # the ast front end decides, and words any error
        if model is None:
            ex = Executor()
            AstFront().run(text, ex)
            model = build_model(ex.finish(), model_id)
        return model
    except CADError as exc:
        raise exc.with_id(model_id) if model_id else exc
