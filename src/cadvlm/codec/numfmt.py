"""Numbers exactly as OpenECAD's converter prints them, without paying numpy's price per call.

OpenECAD v2 code prints every value as ``np.array2string(value.round(4), separator=', ')``.
Reproducing that text byte for byte matters: the training target must be the text an OpenECAD
checkpoint already writes. ``array2string`` costs ~20 us a call, and a model needs dozens, so this
module re-implements the two pieces that matter in pure Python:

- numpy's float rounding (multiply by 10**d, round half to even, divide; the sign of zero kept,
  so -0.00001 prints as ``-0.``), which differs from Python's decimal-exact ``round``;
- numpy's positional float format in its default ``maxprec`` mode: each value's shortest
  round-trip digits (the same digits as Python's ``repr``), integer parts right-aligned and
  fractional parts left-aligned to the widest element, a trailing ``.`` for whole numbers.

numpy switches to scientific notation when the non-zero magnitudes span more than 1e3 (or leave
[1e-4, 1e8)); that case is rare in CAD code and is handed to numpy itself, so the output is always
numpy's. tests/test_codec_numfmt.py checks both paths against ``np.array2string`` on random data.
"""

from __future__ import annotations

import math

import numpy as np

_SCALE = {d: 10.0**d for d in range(0, 10)}


def np_round(x: float, decimals: int = 4) -> float:
    """``np.round(np.float64(x), decimals)`` as a Python float (same bits, sign of zero kept)."""
    f = _SCALE[decimals]
    y = x * f
    if not math.isfinite(y):
        return float(np.round(np.float64(x), decimals))
    r = float(round(y))  # round half to even, like rint
    return math.copysign(r, y) / f


def _parts(v: float) -> tuple[str, str] | None:
    """Integer and fractional digit strings of v's shortest repr; None when repr is scientific."""
    s = repr(v)
    if "e" in s or "n" in s:  # 'e' exponent, 'nan', 'inf'
        return None
    ip, fp = s.split(".")
    return ip, ("" if fp == "0" else fp)


def _needs_numpy(vals) -> bool:
    nz = [abs(v) for v in vals if v != 0.0]
    if not nz:
        return False
    mx, mn = max(nz), min(nz)
    return not (mx < 1e8 and mn >= 1e-4 and mx / mn <= 1000.0)


def format_array(vals) -> str:
    """``np.array2string(np.asarray(vals, float), separator=', ')`` for a short 1-D vector."""
    vals = [float(v) for v in vals]
    if not _needs_numpy(vals):
        parts = [_parts(v) for v in vals]
        if all(p is not None for p in parts):
            left = max(len(p[0]) for p in parts)
            right = max(len(p[1]) for p in parts)
            return "[" + ", ".join(ip.rjust(left) + "." + fp.ljust(right) for ip, fp in parts) + "]"
    return np.array2string(np.asarray(vals, dtype=np.float64), separator=", ")


def format_scalar(v: float) -> str:
    """``np.array2string(np.float64(v), separator=', ')``: shortest digits, ``20.`` for 20.0."""
    v = float(v)
    if not _needs_numpy([v]):
        p = _parts(v)
        if p is not None:
            return p[0] + "." + p[1]
    return np.array2string(np.float64(v), separator=", ")


def _round_parts(vals, decimals: int):
    """Rounded values' (int, frac) digit strings, or None when numpy must format them.

    The digits come from the rounded integer r (value = r / 10**d): the shortest repr of r / 10**d
    is exactly that decimal with trailing zeros dropped (tests compare with numpy on random data).
    """
    f = _SCALE[decimals]
    parts, lo, hi = [], math.inf, 0.0
    for v in vals:
        y = float(v) * f
        try:
            r = round(y)  # half to even, like rint
        except (OverflowError, ValueError):  # inf, nan
            return None
        if r:
            a = r if r > 0 else -r
            q = a / f
            if q < lo:
                lo = q
            if q > hi:
                hi = q
            ip, fp = divmod(a, _POW[decimals])
            fp = str(fp).rjust(decimals, "0").rstrip("0") if fp else ""
            parts.append(("-" + str(ip) if r < 0 else str(ip), fp))
        else:
            parts.append(("-0" if math.copysign(1.0, y) < 0 else "0", ""))
    if hi and not (hi < 1e8 and lo >= 1e-4 and hi / lo <= 1000.0):
        return None  # numpy's scientific notation
    return parts


_POW = {d: 10**d for d in range(0, 10)}


def round_array(vals, decimals: int = 4) -> str:
    """Round like ``ndarray.round(decimals)`` and format like ``array2string`` (hot path, inlined)."""
    parts = _round_parts(vals, decimals)
    if parts is None:
        return format_array([np_round(float(v), decimals) for v in vals])
    left = max(len(p[0]) for p in parts)
    right = max(len(p[1]) for p in parts)
    return "[" + ", ".join(ip.rjust(left) + "." + fp.ljust(right) for ip, fp in parts) + "]"


def round_scalar(v: float, decimals: int = 4) -> str:
    parts = _round_parts((v,), decimals)
    if parts is None:
        return format_scalar(np_round(float(v), decimals))
    return parts[0][0] + "." + parts[0][1]
