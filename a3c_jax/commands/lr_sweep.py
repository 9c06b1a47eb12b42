"""Robustness to the learning rate (the paper's Figure 2 style scatter): final score against
learning rate for A2C (N = W*E envs) and A3C (W workers x E envs).

    a3c-lr-sweep --num-lrs 12 --total-steps 200000 --out runs/lr_sweep

(``python experiments/lr_sweep.py`` in a checkout.)

Learning rates are sampled log-uniformly in [lr_min, lr_max] with a fixed rng. The synchronous
side trains every (learning rate, seed) pair in ONE jitted call, vmapped over both; the
asynchronous side loops over learning rates (``runner.run`` with algo a3c, one run directory
OUT/a3c_lr{i} each). Both sides have the matched budget of ``budget.matched_pair``. Writes
OUT/lr_sweep.csv (algo, lr, seed, final_return) and OUT/lr_scatter.png, and prints per algorithm
the runs, the mean / median / max final return and the best learning rate (``tables.lr_table``).

Final return: episode-weighted mean return over the last ``final_frac`` of env steps.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.shell import directory as rundir, files as runlog, signals
from a3c_jax.drivers.synchronous import make_train
from a3c_jax.config.pairs import matched_pair
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config
from a3c_jax.commands import cli, refused
from a3c_jax.shell.runner import run

CSV_COLUMNS = ("algo", "lr", "seed", "final_return")


@dataclasses.dataclass(frozen=True)
class Args:
    """Final return against learning rate for A2C (vmapped) and A3C (looped)."""

    config: Config = Config(total_steps=200_000, out="runs/lr_sweep")
    """The base config of both sides (``config.pairs.matched_pair``): --workers and
    --envs-per-worker the A3C shape (A2C gets W*E envs), --total-steps the budget per
    (learning rate, seed); --lr is left auto, the sweep sets it."""
    num_lrs: int = 12
    """Number of learning rates sampled."""
    lr_min: float = 1e-4
    """Lower end of the log-uniform range."""
    lr_max: float = 1e-2
    """Upper end of the log-uniform range."""
    sample_seed: int = 0
    """Seed of the rng that samples the learning rates."""
    final_frac: float = 0.1
    """Fraction of the budget (the last env steps) the final return averages over."""
    algos: tuple[Literal["a3c", "a2c"], ...] = ("a3c", "a2c")
    """Which algorithms to sweep."""


def sample_lrs(n: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """``n`` learning rates, LogUniform(lo, hi), sorted; the same for a given seed."""
    rng = np.random.default_rng(seed)
    return np.sort(np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)))


def sync_sweep(config: Config, lrs, seeds, final_frac: float) -> list[dict]:
    """A2C over every (lr, seed) in one jitted, doubly vmapped call."""
    m = make_train(config).train_grid(seeds, lrs)   # [L, S, U]
    rows = []
    for i, lr in enumerate(lrs):
        for j, seed in enumerate(seeds):
            rows.append({"algo": "a2c", "lr": float(lr), "seed": int(seed),
                         "final_return": analysis.final_return(
                             m.env_steps[i, j], m.episode_return[i, j], m.episodes[i, j],
                             final_frac)})
    return rows


def async_configs(config: Config, lrs, out: Path) -> list[Config]:
    """A3C: one run directory per learning rate."""
    return [config.replace(lr=float(lr), out=str(out / f"a3c_lr{i:02d}"))
            for i, lr in enumerate(lrs)]


def async_sweep(config: Config, lrs, out: Path, final_frac: float) -> tuple[list[dict], int]:
    """A3C: one run directory per learning rate, seeds inside each run; the rows and, when a
    signal stopped it, the exit status (else 0)."""
    rows = []
    for lr, c in zip(lrs, async_configs(config, lrs, out)):
        result = run(c)
        for seed in config.seeds:
            rs = [r for r in result.rows if int(r["seed"]) == seed]
            if not rs:
                continue
            rows.append({"algo": config.algo, "lr": float(lr), "seed": int(seed),
                         "final_return": analysis.final_return(
                             [r["env_steps"] for r in rs], [r["episode_return"] for r in rs],
                             [r["episodes"] for r in rs], final_frac)})
        if result.interrupted:
            return rows, signals.exit_code_of(result.extras.get("signal"))
    return rows, 0


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(Args, argv, description=__doc__)
    if not 0 < args.lr_min <= args.lr_max:
        print("error: need 0 < lr_min <= lr_max", file=sys.stderr)
        return 2
    if args.config.lr is not None:
        print("error: --lr: the sweep samples the learning rates; set --lr-min and --lr-max",
              file=sys.stderr)
        return 2
    out = Path(args.config.out)
    lrs = sample_lrs(args.num_lrs, args.lr_min, args.lr_max, args.sample_seed)
    base = args.config.replace(algo="a3c", lr=float(lrs[0]))
    pair = matched_pair(base, base.workers, base.envs_per_worker, out)
    sync_config, async_config = pair["a2c"], pair["a3c"]   # a3c: one directory per lr below
    def check() -> None:
        nonlocal sync_config, async_config
        sync_config, async_config = resolve(sync_config), resolve(async_config)   # validated
        if "a3c" in args.algos:   # every run directory checked before the first run trains
            for c in async_configs(async_config, lrs, out):
                rundir.check(c)

    status = refused(check)
    if status is not None:
        return status

    print(f"learning rates: {', '.join(f'{lr:.2e}' for lr in lrs)}")
    rows: list[dict] = []
    interrupted = 0   # the exit status of an interrupted run
    try:
        if "a2c" in args.algos:
            t0 = time.perf_counter()
            rows += sync_sweep(sync_config, lrs, base.seeds, args.final_frac)
            print(f"a2c: {len(lrs)} lrs x {analysis.seeds_label(len(base.seeds))} in one call, "
                  f"{time.perf_counter() - t0:.1f} s with compilation")
        if "a3c" in args.algos:
            t0 = time.perf_counter()
            more, interrupted = async_sweep(async_config, lrs, out, args.final_frac)
            rows += more
            print(f"a3c: {len(lrs)} lrs looped, {time.perf_counter() - t0:.1f} s")
    except KeyboardInterrupt:
        interrupted = 130
    if not rows:
        print("error: no results", file=sys.stderr)
        return interrupted or 1
    runlog.write_csv(out / "lr_sweep.csv", CSV_COLUMNS, rows)
    df = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    seeds = analysis.seeds_label(len(base.seeds))
    fig = plotting.plot_lr_scatter(
        df, out / "lr_scatter.png", by="algo",
        title=f"{base.env}: final return against learning rate ({seeds} per lr)")
    print()
    print(tables.to_markdown(tables.lr_table(df, by="algo")))
    print(f"table: {out / 'lr_sweep.csv'}\nfigure: {fig}")
    return interrupted or 0


if __name__ == "__main__":
    sys.exit(main())
