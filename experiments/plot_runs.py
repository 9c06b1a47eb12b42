"""Compare any run directories: one two-panel figure (return against env steps and against
wall-clock seconds, mean and bootstrapped 95% band over seeds) and a summary table.

    python experiments/plot_runs.py runs/lstm runs/ff --labels LSTM feed-forward \\
        --threshold 150 --out runs/masked_cartpole

Writes OUT/comparison.png, OUT/summary.csv and OUT/summary.md, and prints the table. Any runs
written by ``train.py``, ``compare.py`` or the Python API can be mixed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro

from a3c_jax import analysis, plotting, tables


@dataclasses.dataclass(frozen=True)
class Args:
    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories (each with config.json and metrics.csv)."""
    labels: tuple[str, ...] = ()
    """One label per run directory (default: algorithm and sizes from config.json)."""
    threshold: float = 475.0
    """Score for 'env steps / seconds to threshold' (smoothed return)."""
    stat: str = "mean"
    """Curve statistic over seeds: mean or iqm."""
    out: str = "runs/plot"
    """Output directory."""
    title: str = ""
    """Figure title (default: the environment and the statistic)."""


def main(a: Args) -> Path:
    if a.labels and len(a.labels) != len(a.runs):
        raise SystemExit(f"--labels: {len(a.labels)} labels for {len(a.runs)} runs")
    missing = [r for r in a.runs if not (Path(r) / "metrics.csv").exists()]
    if missing:
        raise SystemExit(f"not run directories (no metrics.csv): {', '.join(missing)}")
    df = analysis.load_runs(a.runs, labels=list(a.labels) or None)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = plotting.plot_comparison(df, out / "comparison.png", stat=a.stat,
                                   threshold=a.threshold, title=a.title or None)
    table = tables.summary_table(df, threshold=a.threshold, stat=a.stat)
    tables.write_summary(table, out)
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    return fig


if __name__ == "__main__":
    main(tyro.cli(Args))
