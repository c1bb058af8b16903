"""Bootstrap 95% intervals for the headline figures, so two runs can be told apart from noise.

A test split of 100 parts gives a median Chamfer distance that moves by a good fraction of itself
when a handful of parts change; the interval says how much. Percentile bootstrap: the samples
are drawn again with replacement `resamples` times (numpy's PCG64 seeded with `base.seed`, one
fixed stream per figure), the figure is computed on each draw, and the 2.5th and 97.5th
percentiles of those are the interval. Same rows and seed, same interval, same bytes.

Which samples are drawn, per figure:
- `chamfer_median_ci95`, `iou_mean_ci95`: the valid samples only, like the figures they bound
  (an invalid sample has no distance); they say nothing about how often a method fails;
- `iou_mean_all_ci95`: every scored sample, an invalid one counting IoU 0, like `iou_mean_all`;
- `invalid_ratio_ci95`: every scored sample, 1 when invalid;
so the two halves of a method (how good when valid, how often valid) each have their interval.
Samples whose truth does not build are in none of them (they are not scored at all).
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
# One stream per figure: the same seed must not make the figures' draws the same draws.
STREAMS = {"chamfer_median": 1, "iou_mean": 2, "iou_mean_all": 3, "invalid_ratio": 4}


def bootstrap_interval(values, statistic: str, seed: int = 0, resamples: int = RESAMPLES,
                       level: float = LEVEL, stream: int = 0) -> tuple[float, float] | None:
    """(lo, hi) percentile-bootstrap interval of `statistic` ("median" or "mean") of values.

    None for no values; (v, v) for one. Resamples are drawn in one (resamples, n) index array
    from `numpy.random.default_rng([seed, stream])`: deterministic for given values and seed.
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0 or resamples <= 0:
        return None
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', not {statistic!r}")
    rng = np.random.default_rng([int(seed), int(stream)])
    draws = x[rng.integers(0, x.size, size=(int(resamples), x.size))]
    stats = np.median(draws, axis=1) if statistic == "median" else draws.mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def method_intervals(valid_chamfer: list, valid_iou: list, all_iou: list, invalid: list, seed: int = 0,
                     resamples: int = RESAMPLES, rounding=None) -> dict:
    """The `*_ci95` entries of one method's summary (see the module's docstring); None where empty."""
    def ci(values, statistic, name):
        out = bootstrap_interval(values, statistic, seed, resamples, LEVEL, STREAMS[name])
        if out is None:
            return None
        return [rounding(v) for v in out] if rounding else list(out)

    return {"chamfer_median_ci95": ci(valid_chamfer, "median", "chamfer_median"),
            "iou_mean_ci95": ci(valid_iou, "mean", "iou_mean"),
            "iou_mean_all_ci95": ci(all_iou, "mean", "iou_mean_all"),
            "invalid_ratio_ci95": ci(invalid, "mean", "invalid_ratio")}
