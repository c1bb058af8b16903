"""Random mutations and truncations of real answers, for the parser fuzz test and benchmark."""

from __future__ import annotations

import random

from cadvlm.cad.model import CADError
from cadvlm.codec.openecad_parser import parse_code

ALPHABET = "0123456789.-+eE[](),=_ \t\n\"'#*/:;{}xyzLineArcCircleLoopsProfileSketchExtrude"
INJECTIONS = (
    "import os", "__import__('os').system('echo hi')", "exec('print(1)')", "eval('1+1')",
    "while True: pass", "for i in range(10**9): pass", "x = [0] * 10**9", "np.pi = 3",
    "Loops0 = open('/etc/passwd').read()", "del Loops0", "Line0_0_0 = add_line(start=[1, 2], end=lambda: 0)",
    "Extrude0 = add_extrude(**{'sketch': Sketch0})", "Loops0 = [1e308 * 10]", "def f(): pass",
    "class A: pass", "Loop0_0 = add_loop(*Curves0_0)", "with open('x') as f: pass", "SketchPlane0 = np",
    "Line0_0_0 = add_line(start= [" + "9" * 300 + ", 0.], end= [1., 1.])", "(" * 150 + "1" + ")" * 150,
    "angle = np.pi" + "/2" * 400, "Curves0_0 = []\n" * 50, "\x00", "\ufeffLoops0 = []", "ℕ = []",
)


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits: truncation, character noise, line surgery, token swaps, injections."""
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(9)
        n = len(text)
        if op == 0 and n:  # truncate anywhere
            text = text[: rng.randrange(n)]
        elif op == 1 and n:  # delete a span
            i = rng.randrange(n)
            text = text[:i] + text[i + rng.randint(1, 8):]
        elif op == 2:  # insert random characters
            i = rng.randrange(n + 1)
            text = text[:i] + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 6))) + text[i:]
        elif op == 3 and n:  # replace one character
            i = rng.randrange(n)
            text = text[:i] + rng.choice(ALPHABET) + text[i + 1:]
        else:
            lines = text.split("\n")
            k = rng.randrange(len(lines))
            if op == 4:
                del lines[k]
            elif op == 5:
                lines.insert(k, lines[rng.randrange(len(lines))])
            elif op == 6:
                j = rng.randrange(len(lines))
                lines[k], lines[j] = lines[j], lines[k]
            elif op == 7:
                lines.insert(k, rng.choice(INJECTIONS))
            else:  # swap a number for an extreme one
                for tok in ("0.", "1.", "10.", "0", "2"):
                    if tok in lines[k]:
                        lines[k] = lines[k].replace(tok, rng.choice(["1e300", "-0.", "1e-300", "nan", "9" * 50,
                                                                     "np.pi", "True", "'x'", "[]"]), 1)
                        break
            text = "\n".join(lines)
    return text


def outcome(text: str, fast: bool):
    """('ok', model) or ('error', reason, message); anything else propagates (a test failure)."""
    try:
        return ("ok", parse_code(text, fast=fast))
    except CADError as exc:
        return ("error", exc.reason, str(exc))
