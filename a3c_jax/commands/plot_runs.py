"""Compare any run directories: one two-panel figure (return against env steps and against
wall-clock seconds, mean and bootstrapped 95% band over seeds) and a summary table.

    a3c-plot runs/lstm runs/ff --labels LSTM feed-forward --threshold 150 \\
        --out runs/masked_cartpole

(``python experiments/plot_runs.py`` in a checkout.)

Writes OUT/comparison.png, OUT/summary.csv and OUT/summary.md, and prints the table. Any runs
written by ``train.py``, ``compare.py`` or the Python API can be mixed.

Labels. Each run is labelled by its method ('a3c W=2 E=1', 'a2c N=16') plus ``key=value`` for
every option in which it differs from the other runs given with that method label
('a2c N=16 segments=until-terminal combine=sum', 'a3c W=2 E=1 backend=processes'). Runs share
a label, and their seeds are pooled, only when their config.json files are equal apart from
the seeds and the output options (out, logging, progress, checkpoints); --labels may pool such
runs by giving them one label, never runs whose configs differ (exit status 2, naming the
options). A seed found in two runs of one label is refused too (it would count twice). The
legend and the table list the labels in the order the runs (and --labels) are given.

Smoothing. Steps and seconds to --threshold read the return smoothed over the last --window
env steps (10k by default, the window of the early stop ``--stop-window``); the window is a
number of env steps, not a fraction of the budget, so a run gives the same curve and the same
steps to the threshold whatever it is compared with. The figure's y label and the table's
caption state it.

Uneven budgets. The aggregate curve of a label stops where its shortest curve stops (a band
never mixes seeds that stopped with seeds still running), and each seed's final return averages
its own last 10%. When the curves pooled under one label end at different env steps (an early
stop, an interrupted run), this is not silent: a warning on stderr, the range in the table's
'env steps' column and under the table, and "cut at ... env steps" in the legend. The runs are
still drawn; drop or rerun the short ones for a like-for-like comparison.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.core import curves


@dataclasses.dataclass(frozen=True)
class Args:
    """Compare any run directories in one figure and one summary table."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories (each with config.json and metrics.csv)."""
    labels: tuple[str, ...] = ()
    """One label per run directory, legend and table in this order (default: the method and
    sizes from config.json, plus each option that differs between runs of that method). Runs
    given one label are pooled; their configs must be equal apart from seeds and output
    options."""
    threshold: float = 475.0
    """Score for 'env steps / seconds to threshold' (smoothed return)."""
    window: int = curves.SMOOTH_WINDOW
    """Env steps the return is smoothed over, in the figure and for the threshold columns."""
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
    if a.window <= 0:
        raise ValueError(f"--window: must be a positive number of env steps, got {a.window}")
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
                                   threshold=a.threshold, title=a.title or None,
                                   window_steps=a.window)
    table = tables.summary_table(df, threshold=a.threshold, stat=a.stat,
                                 window_steps=a.window)
    for warning in tables.budget_warnings(table):
        print(f"warning: {warning}", file=sys.stderr)
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
