"""Draw the rl stage's curves (DVCLive's TSV files) into one PNG for the README: the mean reward of
each step's sampled answers (with its spread) and the share of them that failed to build.
`dvc plots show` draws the same curves as HTML; this keeps a picture in the repository.

Usage: python scripts/plot_rl.py [metrics/rl/plots/metrics] [docs/rl.png]
"""

import sys
from pathlib import Path

from plot_loss import read_tsv, save_figure  # scripts/ is on the path when this file runs; it also picks the Agg backend

import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "metrics/rl/plots/metrics")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/rl.png")
    steps, mean = read_tsv(src / "reward" / "mean.tsv")
    _, sd = read_tsv(src / "reward" / "sd.tsv")
    _, invalid = read_tsv(src / "invalid.tsv")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    ax.plot(steps, mean, label="mean reward of the step's answers")
    ax.fill_between(steps, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], alpha=0.2,
                    label="± sd")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("reward (IoU; no solid: penalty)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    bx.plot(steps, [100 * v for v in invalid], color="C3")
    bx.set_xlabel("optimiser step")
    bx.set_ylabel("sampled answers with no solid (%)")
    bx.grid(alpha=0.3)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
