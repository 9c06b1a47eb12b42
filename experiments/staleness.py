"""Staleness studies on the emulated backend, each setting x seed pair vmapped in one program.

1. Return against env steps for gradient staleness tau in a list (``fixed:tau``, W workers in
   round-robin order, W = 1 by default: one actor-learner whose every gradient is taken at
   the parameters of tau updates earlier), and env steps to a threshold against tau, median
   over seeds with a 95% bootstrap interval.
2. The paper's data-efficiency question: W = 1, 2, 4, 8, 16 emulated workers in round-robin
   (tau = W - 1, every worker with its own environments), env steps to the threshold
   against W. Threads cannot answer this on a 2-core machine.

    python experiments/staleness.py --seeds 0 1 2 3 4 5 6 7 --out runs/staleness

Writes OUT/{tau,workers}.csv (one row per setting), OUT/{tau,workers}_seeds.csv (env steps
to the threshold per seed), OUT/{tau,workers}.md and OUT/{tau,workers}.png.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import tyro

from a3c_jax.shell import files as runlog
from a3c_jax.core import staleness
from a3c_jax.analysis import staleness as staleness_report
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.drivers.emulated.runs import sweep

DEFAULTS = Config()


@dataclasses.dataclass(frozen=True)
class Args:
    """Staleness and worker-count studies on the emulated backend."""

    env: str = DEFAULTS.env
    """gymnax environment id."""
    algo: Literal["a3c", "q1", "sarsa", "nq"] = "a3c"
    """Asynchronous method."""
    taus: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32)
    """Staleness values of part 1 (``fixed:tau``)."""
    tau_workers: int = 1
    """Workers W in part 1."""
    workers: tuple[int, ...] = (1, 2, 4, 8, 16)
    """Worker counts of part 2 (round-robin, tau = W - 1)."""
    parts: tuple[Literal["tau", "workers"], ...] = ("tau", "workers")
    """Which studies to run."""
    envs_per_worker: int = DEFAULTS.envs_per_worker
    """Environments per worker E."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    """Seeds per setting."""
    total_steps: int = 1_000_000
    """Env steps per run (a setting stops once all its seeds reached the threshold)."""
    threshold: float = 475.0
    """Score to reach (smoothed return over ``window`` env steps)."""
    window: int = DEFAULTS.stop_window
    """Smoothing window in env steps."""
    lr: float | None = DEFAULTS.lr
    """Learning rate (None: the method's default)."""
    out: str = "runs/staleness"
    """Output directory."""


def write_study(out: Path, name: str, got, labels, x, x_label, extra, args, title,
                steps_done: int) -> str:
    per_seed = pd.DataFrame([{"setting": lab, "seed": s, "steps_to_threshold": got.steps_to[m, k]}
                             for m, lab in enumerate(labels) for k, s in enumerate(got.seeds)])
    runlog.atomic_write_text(out / f"{name}_seeds.csv", per_seed.to_csv(index=False))
    table = staleness_report.steps_table(dict(zip(labels, got.steps_to)), extra)
    runlog.atomic_write_text(out / f"{name}.csv", table.to_csv(index=False))
    md = staleness_report.table_markdown(table)
    runlog.atomic_write_text(out / f"{name}.md", md)
    staleness_report.plot_sweep(got.env_steps, got.smoothed(args.window), labels, table, x,
                                x_label, args.threshold, out / f"{name}.png", title)
    rate = steps_done / max(got.wall_s, 1e-9)
    return (f"{md}\n{len(labels)} settings x {len(got.seeds)} seeds: compile "
            f"{got.compile_s:.1f} s, training {got.wall_s:.1f} s "
            f"({rate:,.0f} env steps/s over all pairs); figure {out / f'{name}.png'}\n")


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(args.out)
    base = Config(algo=args.algo, backend="emulated", env=args.env,
                  envs_per_worker=args.envs_per_worker, total_steps=args.total_steps,
                  lr=args.lr, progress=False)
    configs = {"tau": base.replace(workers=args.tau_workers),
               "workers": [base.replace(workers=w) for w in args.workers]}
    try:
        for c in [configs["tau"], *configs["workers"]]:
            c.validate()
        if not args.taus or not args.workers or not args.seeds:
            raise ValueError("taus, workers and seeds must be non-empty")
        for t in args.taus:
            staleness.parse(f"fixed:{t}")
    except ValueError as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(args.seeds)
    if "tau" in args.parts:
        labels = [f"tau={t}" for t in args.taus]
        got = sweep(resolve(configs["tau"]), [f"fixed:{t}" for t in args.taus], seeds,
                    args.threshold, args.window)
        extra = {lab: {"tau": t, "mean_staleness": float(got.mean_staleness[m].mean())}
                 for m, (lab, t) in enumerate(zip(labels, args.taus))}
        print(write_study(out, "tau", got, labels, list(args.taus), "staleness tau", extra,
                          args, f"{args.algo} on {args.env}: gradient staleness, "
                                f"W = {args.tau_workers}, {len(seeds)} seeds",
                          got.return_sum.size * int(got.env_steps[0])))
    if "workers" in args.parts:
        runs = [sweep(resolve(c), ["round-robin"], seeds, args.threshold, args.window)
                for c in configs["workers"]]
        n = max(r.env_steps.size for r in runs)
        pad = lambda a: np.pad(a[0], ((0, 0), (0, n - a.shape[-1])))  # noqa: E731
        got = dataclasses.replace(
            runs[0], env_steps=(np.arange(n) + 1) * runs[0].env_steps[0],
            return_sum=np.stack([pad(r.return_sum) for r in runs]),
            episodes=np.stack([pad(r.episodes) for r in runs]),
            steps_to=np.concatenate([r.steps_to for r in runs]),
            compile_s=sum(r.compile_s for r in runs), wall_s=sum(r.wall_s for r in runs))
        labels = [f"W={w}" for w in args.workers]
        extra = {lab: {"workers": w, "mean_staleness": float(r.mean_staleness.mean())}
                 for lab, w, r in zip(labels, args.workers, runs)}
        print(write_study(out, "workers", got, labels, list(args.workers),
                          "emulated workers W (round-robin)", extra, args,
                          f"{args.algo} on {args.env}: W workers in round-robin "
                          f"(tau = W - 1), {len(seeds)} seeds",
                          sum(r.return_sum.size * int(r.env_steps[0]) for r in runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
