"""codec.numfmt prints numbers exactly as numpy's array2string does (OpenECAD's format)."""

import random

import numpy as np

from cadvlm.codec.numfmt import np_round, round_array, round_scalar


def _values(rng: random.Random, n: int) -> list[float]:
    out = []
    for _ in range(n):
        k = rng.random()
        if k < 0.15:
            v = rng.choice([0.0, -0.0, -1e-9, -4e-5, 5e-5, -6e-5])  # signed zeros after rounding
        elif k < 0.4:
            v = rng.uniform(-1, 1) * 10 ** rng.randint(-6, 9)  # incl. numpy's scientific range
        elif k < 0.7:
            v = round(rng.uniform(-500, 500), rng.randint(0, 6))
        elif k < 0.72:
            v = rng.choice([float("inf"), -float("inf"), float("nan")])
        else:  # exact fractions and half-way cases of the 4th decimal
            v = rng.randint(-2000, 2000) / rng.choice([1, 2, 4, 8, 1000, 10000, 20000, 3]) + rng.choice([0, 5e-5, -5e-5])
        out.append(v)
    return out


def test_round_matches_numpy():
    rng = random.Random(0)
    for _ in range(5000):
        v = _values(rng, 1)[0]
        if np.isfinite(v):
            got, want = np_round(v, 4), float(np.round(np.float64(v), 4))
            assert got == want and np.signbit(got) == np.signbit(want), v


def test_format_matches_array2string():
    rng = random.Random(1)
    with np.errstate(all="ignore"):
        for _ in range(8000):
            vals = _values(rng, rng.choice([1, 2, 3]))
            if len(vals) == 1 and rng.random() < 0.5:
                assert round_scalar(vals[0]) == np.array2string(np.float64(vals[0]).round(4), separator=", "), vals
            else:
                assert round_array(vals) == np.array2string(np.array(vals).round(4), separator=", "), vals


def test_known_texts():
    assert round_array([10.0, 0.0]) == "[10.,  0.]"
    assert round_array([-3.5, 6.985]) == "[-3.5  ,  6.985]"
    assert round_array([1.0, 0.0, -0.0]) == "[ 1.,  0., -0.]"
    assert round_scalar(20.0) == "20." and round_scalar(1.75255) == "1.7526"
    assert round_array([0.001, 12.5]) == "[1.00e-03, 1.25e+01]"  # numpy's scientific switch
