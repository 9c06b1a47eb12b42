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
bootstrapped 95% band over seeds), OUT/summary.csv and OUT/summary.md.

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

import tyro

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.shell import directory as rundir, signals
from a3c_jax.config.pairs import matched_pair, pair_labels
from a3c_jax.config.schema import Combine, Config, OptimizerName, Segments, StoreMode
from a3c_jax.commands import refused
from a3c_jax.shell.runner import run

Method = Literal["a3c", "a2c", "q1", "sarsa", "nq"]
DEFAULTS = Config()


@dataclasses.dataclass(frozen=True)
class Args:
    """Compare a method's asynchronous (W workers x E envs) and synchronous (W*E envs) forms
    at a matched budget."""

    algo: Method = "a3c"
    """The method: a3c (against a2c, its synchronous form; a2c names the same pair), q1,
    sarsa or nq (against q1_sync, sarsa_sync, nq_sync)."""
    env: str = DEFAULTS.env
    """gymnax environment id."""
    workers: int = DEFAULTS.workers
    """A3C: number of actor-learner threads W."""
    envs_per_worker: int = DEFAULTS.envs_per_worker
    """A3C: environments per worker E. A2C gets W*E environments."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, the same for both algorithms."""
    total_steps: int = 300_000
    """Env steps per seed for each algorithm (the global counter T for A3C)."""
    threshold: float = 475.0
    """Score for 'env steps / seconds to threshold' (on the smoothed return)."""
    out: str = "runs/compare"
    """Output directory; runs go to OUT/<label> (a3c and a2c, or nq and nq_sync...)."""
    algos: tuple[str, ...] = ()
    """Which sides of the pair to run, by label (a3c a2c, or nq nq_sync...); empty: both.
    The others are read from OUT if they were run before."""
    t_max: int = DEFAULTS.t_max
    """Segment length, the same for both."""
    segments: Segments = DEFAULTS.segments
    """Segments: fixed, or until-terminal (the paper's), the same for both."""
    combine: Combine = DEFAULTS.combine
    """How the loss combines an update's segments (sum, step-mean, env-mean)."""
    lr: float | None = DEFAULTS.lr
    """Learning rate, the same for both (annealed linearly to 0 unless --no-lr-anneal)."""
    lr_anneal: bool = DEFAULTS.lr_anneal
    """Anneal the learning rate linearly to 0 over the budget."""
    optimizer: OptimizerName = DEFAULTS.optimizer
    """Optimiser, the same for both (rmsprop: statistics shared across A3C workers)."""
    store_mode: StoreMode = DEFAULTS.store_mode
    """A3C shared-store write mode."""
    stat: Literal["mean", "iqm"] = "mean"
    """Aggregate over seeds in the figure and the table: mean or interquartile mean."""
    progress: bool = DEFAULTS.progress
    """Show progress bars."""
    overwrite: bool = False
    """Replace earlier runs in OUT/a3c and OUT/a2c (without it, an existing one is refused)."""


def base_config(args: Args) -> Config:
    """The one Config both algorithms are built from; only the algorithm's shape differs."""
    return Config(algo=args.algo, env=args.env, total_steps=args.total_steps,
                  seeds=tuple(args.seeds), t_max=args.t_max, segments=args.segments,
                  combine=args.combine, lr=args.lr, lr_anneal=args.lr_anneal,
                  optimizer=args.optimizer, store_mode=args.store_mode,
                  progress=args.progress, overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(args.out)
    base = base_config(args)
    labels = pair_labels(args.algo)
    configs = matched_pair(base, args.workers, args.envs_per_worker, out)
    algos = args.algos or labels
    def check() -> None:
        for algo in algos:
            if algo not in labels:
                raise ValueError(f"algos: {algo!r} is not a side of {args.algo}'s pair "
                                 f"({', '.join(labels)}); pass --algo for its method")
            configs[algo].validate()
        for algo in algos:   # every run directory checked before the first run trains
            rundir.check(configs[algo])

    status = refused(check)
    if status is not None:
        return status

    interrupted = None   # the exit status of an interrupted run
    for algo in algos:
        print(f"training {algo}: {analysis.method_label(configs[algo].to_dict())}, "
              f"{args.total_steps} env steps x {analysis.seeds_label(len(args.seeds))} -> "
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
                                   threshold=args.threshold)
    table = tables.summary_table(df, threshold=args.threshold, stat=args.stat)
    csv_path, md_path = tables.write_summary(table, out)
    print()
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    print(f"summary: {csv_path} and {md_path}")
    print(f"(os.cpu_count() = {os.cpu_count()})")
    return interrupted or 0


if __name__ == "__main__":
    sys.exit(main())
