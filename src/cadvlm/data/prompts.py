"""The instruction a picture comes with: the templates, which one a sample gets, and the words
for what the picture shows.

Kept apart from the convert stage because inference needs the same wording: the model folder's
manifest stores the templates, and predict and serve fill them in exactly as convert did.
"""

from __future__ import annotations

import hashlib

DEFAULT_PROMPTS = (
    "This picture shows {views} of a mechanical part. Write the OpenECAD-style Python code "
    "(sketch planes, loops, extrudes) that builds it.",
    "Reconstruct the CAD model shown in {views} as an OpenECAD-style sketch-and-extrude program.",
    "The image gives {views} of a 3D part. Please use the OpenECAD-style API to model it.",
    "Write OpenECAD-style CAD code that produces the solid drawn in {views}.",
)


def choose_template(sample_id: str, seed: int, n: int) -> int:
    """Template index for a sample: a hash of (seed, id), so no sample's choice depends on another."""
    h = hashlib.sha256(f"{seed}\0{sample_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") % n


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def describe_views(views, view: str | None = None) -> str:
    """The text for a template's {views}: one view ("the front view"), or the sheet of all of them."""
    if view is not None:
        return f"the {view} view"
    names = list(views)
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    count = _NUMBERS[len(names)] if len(names) < len(_NUMBERS) else str(len(names))
    return f"{count} views ({listed})"
