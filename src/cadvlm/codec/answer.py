"""The chat answer around CAD code: the wrapper OpenECAD trains on, and getting the code back out.

Every language (OpenECAD v2, CadQuery, compact) travels inside the same answer, so this sits below
every parser: `CodeParseError` is defined here and raised by each.
"""

from __future__ import annotations

import re

from cadvlm.cad.model import CADError

ANSWER_PREFIX = "Of course, here are the codes:\n"
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n", re.IGNORECASE)
# A bare program (no fence) is recognised by a word only that language writes.
_BARE_MARKERS = {"openecad": ("add_",), "compact": ("extrude",), "cadquery": ("cadquery", "Workplane(", "Sketch(")}


class CodeParseError(CADError):
    """Code that is not a program of its language; `line` is 1-based (or None)."""

    def __init__(self, message: str, line: int | None = None, model_id: str | None = None):
        self.line = line
        super().__init__("parse_error", f"line {line}: {message}" if line else message, model_id)


def wrap_answer(code: str) -> str:
    """The assistant answer OpenECAD trains on: a sentence and a fenced python block."""
    return ANSWER_PREFIX + "```python\n" + code.rstrip("\n") + "\n```"


def extract_code(answer: str) -> str:
    """The code inside the first fenced block of an answer; CodeParseError if none or unclosed."""
    if not isinstance(answer, str):
        raise CodeParseError(f"answer must be text, not {type(answer).__name__}")
    m = _FENCE.search(answer)
    if m is None:
        raise CodeParseError("no ``` code block in the answer")
    end = answer.find("```", m.end())
    if end < 0:
        raise CodeParseError("the code block is not closed (truncated answer?)")
    return answer[m.end():end]


def answer_code(answer, language: str = "openecad") -> str:
    """The code in a generated answer: the fenced block if the answer has one, else the whole
    text when it is bare code (OpenECAD outputs saved as .py files).

    CADError('no_code') for an empty answer or prose without code; 'parse_error' for a broken
    fence (an unclosed block is a truncated answer).
    """
    if not isinstance(answer, str) or not answer.strip():
        raise CADError("no_code", "empty answer")
    if "```" in answer:
        return extract_code(answer)
    if any(m in answer for m in _BARE_MARKERS.get(language, ("add_",))):
        return answer
    raise CADError("no_code", f"no code block and no {language} statement in the answer")
