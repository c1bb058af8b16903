"""Draw the train stage's loss curves (DVCLive's TSV files) into one PNG for the README.

`dvc plots show` draws the same curves as HTML; this keeps a picture in the repository.
Usage: python scripts/plot_loss.py [metrics/train/plots/metrics] [docs/loss.png]
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_tsv(path: Path) -> tuple[list[float], list[float]]:
    """(steps, values) of a DVCLive TSV file: the `step` column and the metric's own."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    value = [k for k in rows[0] if k != "step"][0]
    return [float(r["step"]) for r in rows], [float(r[value]) for r in rows]


def save_figure(fig, out: Path) -> None:
    """Lay out, write and say where (the plot scripts' common last step)."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


def main() -> None:
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "metrics/train/plots/metrics")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/loss.png")
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for name, style in (("train", "-"), ("eval", "o-")):
        steps, loss = read_tsv(src / name / "loss.tsv")
        ax.plot(steps, loss, style, label="validation" if name == "eval" else "train", markersize=4)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (answer tokens, nats)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, out)


if __name__ == "__main__":
    main()
