"""Asynchronous against synchronous at a matched budget, for any method: W workers x E envs
against W*E lockstep envs (A3C against A2C, or nq against nq_sync...), the same t_max,
network, optimiser, hyperparameters, seeds and env steps (``a3c_jax.config.pairs``).

    a3c-compare --out runs/demo
    a3c-compare --workers 4 --envs-per-worker 2 --seeds 0 1 2 3 4
    a3c-compare --algo nq --threshold 400 --total-steps 1000000 --out runs/nq

(``python experiments/compare.py`` in a checkout.)

Writes OUT/<async label>/ and OUT/<sync label>/ (a3c and a2c, or nq and nq_sync...; each a
run directory: config.json, metrics.csv, params...),
OUT/comparison.png (return against env steps and against wall-clock seconds, mean and
bootstrapped 95% band over seeds; the greedy evaluations dashed when the runs have them),
OUT/summary.csv and OUT/summary.md. With ``--eval-every`` the table's final return and
threshold are the greedy evaluations' (``eval_return``), else the training episodes'; its
``return`` column says which.

Every option of ``a3c-train`` applies to both sides. The learning rate: --lr given, both
sides use it; left auto, each side gets its own method's default (on discrete actions 1e-3
for a3c and 5e-3 for a2c, which averages N*t_max steps per update; ``config.defaults``).

A2C trains its seeds one after another (``vmap_seeds=False``) so that each seed has its own
wall-clock curve, like the asynchronous runs. Wall-clock seconds count from the end of
compilation.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Literal

from a3c_jax.analysis import runs as analysis, figures as plotting, labels as naming, tables
from a3c_jax.shell import directory as rundir, signals
from a3c_jax.config.pairs import matched_pair, pair_labels
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config
from a3c_jax.core import curves
from a3c_jax.commands import cli, refused
from a3c_jax.shell.runner import run



@dataclasses.dataclass(frozen=True)
class Args:
    """Compare a method's asynchronous (W workers x E envs) and synchronous (W*E envs) forms
    at a matched budget."""

    config: Config = Config(algo="a3c", total_steps=300_000, seeds=(0, 1, 2),
                            out="runs/compare")
    """The base config both sides are built from (``config.pairs.matched_pair``): --algo names
    the method (a3c against a2c, its synchronous form; a2c names the same pair; q1, sarsa or
    nq against q1_sync...), --workers and --envs-per-worker the asynchronous shape (the
    synchronous side gets W*E envs), --out the directory of OUT/<label>."""
    threshold: float = 475.0
    """Score for 'env steps / seconds to threshold' (on the greedy evaluations with
    --eval-every, else on the smoothed return)."""
    algos: tuple[str, ...] = ()
    """Which sides of the pair to run, by label (a3c a2c, or nq nq_sync...); empty: both.
    The others are read from OUT if they were run before."""
    stat: Literal["mean", "iqm"] = "mean"
    """Aggregate over seeds in the figure and the table: mean or interquartile mean."""
    window: int = curves.SMOOTH_WINDOW
    """Env steps the return is smoothed over, in the figure and for the threshold columns
    (a number of env steps, not a fraction of --total-steps: a run's steps to the threshold
    do not depend on the budget)."""


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Args, argv, description=__doc__)
    base = args.config
    out = Path(base.out)
    labels = pair_labels(base.algo)
    configs = matched_pair(base, base.workers, base.envs_per_worker, out)
    algos = args.algos or labels
    def check() -> None:
        if args.window <= 0:
            raise ValueError(f"--window: must be a positive number of env steps, "
                             f"got {args.window}")
        for algo in algos:
            if algo not in labels:
                raise ValueError(f"algos: {algo!r} is not a side of {base.algo}'s pair "
                                 f"({', '.join(labels)}); pass --algo for its method")
            configs[algo] = resolve(configs[algo])   # validated here, once
        for algo in algos:   # every run directory checked before the first run trains
            rundir.check(configs[algo])

    status = refused(check)
    if status is not None:
        return status

    interrupted = None   # the exit status of an interrupted run
    for algo in algos:
        print(f"training {algo}: {naming.method_label(configs[algo].to_dict())}, "
              f"{base.total_steps} env steps x {analysis.seeds_label(len(base.seeds))} -> "
              f"{configs[algo].out}")
        result = run(configs[algo])
        if result.interrupted:
            interrupted = signals.exit_code_of(result.extras.get("signal"))
            print(f"{algo} interrupted; writing what was gathered", file=sys.stderr)
            break

    dirs = [d for d in (Path(configs[a].out) for a in labels)
            if (d / "metrics.csv").exists() and (d / "config.json").exists()]
    df = analysis.load_runs(dirs)
    if df.empty:
        print("error: no metrics to compare", file=sys.stderr)
        return interrupted or 1
    fig = plotting.plot_comparison(df, out / "comparison.png", stat=args.stat,
                                   threshold=args.threshold, window_steps=args.window)
    table = tables.summary_table(df, threshold=args.threshold, stat=args.stat,
                                 window_steps=args.window)
    csv_path, md_path = tables.write_summary(table, out)
    print()
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    print(f"summary: {csv_path} and {md_path}")
    print(f"(os.cpu_count() = {os.cpu_count()})")
    return interrupted or 0


if __name__ == "__main__":
    sys.exit(main())
