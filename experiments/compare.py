"""Asynchronous against synchronous at a matched budget: A3C with W workers x E envs against
A2C with W*E envs, the same t_max, network, optimiser, hyperparameters, seeds and env steps.

    python experiments/compare.py --out runs/demo
    python experiments/compare.py --workers 4 --envs-per-worker 2 --seeds 0 1 2 3 4

Writes OUT/a3c/ and OUT/a2c/ (each a run directory: config.json, metrics.csv, params...),
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

from a3c_jax import analysis, plotting, tables
from a3c_jax.budget import PAIR, matched_pair
from a3c_jax.config import Config, OptimizerName, StoreMode
from a3c_jax.runner import run

AlgoChoice = Literal["a3c", "a2c"]
DEFAULTS = Config()


@dataclasses.dataclass(frozen=True)
class Args:
    """Compare A3C (W workers x E envs) against A2C (W*E envs) at a matched budget."""

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
    """Output directory; runs go to OUT/a3c and OUT/a2c."""
    algos: tuple[AlgoChoice, ...] = ("a3c", "a2c")
    """Which algorithms to run; the others are read from OUT if they were run before."""
    t_max: int = DEFAULTS.t_max
    """Segment length, the same for both."""
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


def base_config(args: Args) -> Config:
    """The one Config both algorithms are built from; only the algorithm's shape differs."""
    return Config(env=args.env, total_steps=args.total_steps, seeds=tuple(args.seeds),
                  t_max=args.t_max, lr=args.lr, lr_anneal=args.lr_anneal,
                  optimizer=args.optimizer, store_mode=args.store_mode,
                  progress=args.progress)


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(args.out)
    base = base_config(args)
    configs = matched_pair(base, args.workers, args.envs_per_worker, out)
    try:
        for algo in args.algos:
            configs[algo].validate()
    except ValueError as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2

    interrupted = False
    for algo in args.algos:
        print(f"training {algo}: {analysis.method_label(configs[algo].to_dict())}, "
              f"{args.total_steps} env steps x {analysis.seeds_label(len(args.seeds))} -> "
              f"{configs[algo].out}")
        result = run(configs[algo])
        if result.interrupted:
            interrupted = True
            print(f"{algo} interrupted; writing what was gathered", file=sys.stderr)
            break

    dirs = [d for d in (Path(configs[a].out) for a in PAIR)
            if (d / "metrics.csv").exists() and (d / "config.json").exists()]
    df = analysis.load_runs(dirs)
    if df.empty:
        print("error: no metrics to compare", file=sys.stderr)
        return 130 if interrupted else 1
    fig = plotting.plot_comparison(df, out / "comparison.png", stat=args.stat,
                                   threshold=args.threshold)
    table = tables.summary_table(df, threshold=args.threshold, stat=args.stat)
    csv_path, md_path = tables.write_summary(table, out)
    print()
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    print(f"summary: {csv_path} and {md_path}")
    print(f"(os.cpu_count() = {os.cpu_count()})")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
