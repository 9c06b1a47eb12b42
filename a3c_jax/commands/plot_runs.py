"""Compare any run directories: one two-panel figure (return against env steps and against
wall-clock seconds, mean and bootstrapped 95% band over seeds) and a summary table.

    a3c-plot runs/lstm runs/ff --labels LSTM feed-forward --threshold 150 \\
        --out runs/masked_cartpole

(``python experiments/plot_runs.py`` in a checkout.)

Writes OUT/comparison.png, OUT/summary.csv and OUT/summary.md, and prints the table. Any runs
written by ``train.py``, ``compare.py`` or the Python API can be mixed.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from a3c_jax.analysis import runs as analysis, figures as plotting, tables


@dataclasses.dataclass(frozen=True)
class Args:
    """Compare any run directories in one figure and one summary table."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories (each with config.json and metrics.csv)."""
    labels: tuple[str, ...] = ()
    """One label per run directory (default: algorithm and sizes from config.json)."""
    threshold: float = 475.0
    """Score for 'env steps / seconds to threshold' (smoothed return)."""
    stat: Literal["mean", "iqm"] = "mean"
    """Curve statistic over seeds: mean or iqm (interquartile mean)."""
    out: str = "runs/plot"
    """Output directory."""
    title: str = ""
    """Figure title (default: the environment and the statistic)."""


def plot(a: Args) -> Path:
    """The figure and the summary table of ``a.runs``; ValueError naming a bad argument,
    raised before anything is written."""
    if not a.runs:
        raise ValueError("RUNS: give at least one run directory")
    if a.labels and len(a.labels) != len(a.runs):
        raise ValueError(f"--labels: {len(a.labels)} labels for {len(a.runs)} runs")
    missing = [r for r in a.runs if not (Path(r) / "metrics.csv").exists()]
    if missing:
        raise ValueError(f"RUNS: not run directories (no metrics.csv): {', '.join(missing)}")
    df = analysis.load_runs(a.runs, labels=list(a.labels) or None)
    if df.empty:
        raise ValueError(f"RUNS: no logged rows in {', '.join(a.runs)}")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)
    fig = plotting.plot_comparison(df, out / "comparison.png", stat=a.stat,
                                   threshold=a.threshold, title=a.title or None)
    table = tables.summary_table(df, threshold=a.threshold, stat=a.stat)
    tables.write_summary(table, out)
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    return fig


def main(argv: list[str] | None = None) -> int:
    """Exit status 2, with a message naming the argument and nothing written, on bad input."""
    try:
        plot(tyro.cli(Args, args=argv, description=__doc__))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
