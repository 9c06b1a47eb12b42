"""Emulated workers against real threads: env steps per second of A3C with W workers (E = 1).

Measured in one process, one after another, each for the same budget, over the training
phase only (threads compile their step before they start, the emulator its program):

* W real threads on one shared store (``--backend threads``, hogwild), one seed;
* the emulator, round-robin (tau = W - 1): one seed in blocks of W gradients per vmapped call
  (the default), one seed one update at a time (``block = 1``), and ``--vmap-seeds`` seeds in
  one call (env steps of all seeds counted). The program alone: its outputs reach the host,
  but no update records are built (``run_seeds`` adds that Python work).

Two rates per setting: env steps per wall-clock second, and per CPU second of this process
(all its threads). On a machine shared with other jobs the wall-clock rate depends on the share
of the cores each setting gets (W runnable threads get a larger share than one process with
XLA's pool), while the CPU rate measures the work an env step costs.

    python benchmarks/emulator_speed.py --workers 16 --total-steps 200000 --repeats 2

Figures depend on the machine and its load (printed): print, never assert.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax.numpy as jnp
import tyro

from a3c_jax.core import staleness
from a3c_jax.analysis import staleness as staleness_report
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.drivers.emulated.runs import Batch
from a3c_jax.drivers.emulated.program import Emulator
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import AsyncWorker


@dataclasses.dataclass(frozen=True)
class Args:
    workers: int = 16
    """Workers W (threads, and emulated workers)."""
    env: str = "CartPole-v1"
    """gymnax environment id."""
    total_steps: int = 200_000
    """Env steps per measurement (per seed)."""
    vmap_seeds: int = 8
    """Seeds in the vmapped emulated measurement."""
    repeats: int = 1
    """Measurements per setting (the best wall-clock rate is reported, with its CPU rate)."""
    figure: str = ""
    """Save a bar chart of the wall-clock rates here."""


def timed(fn) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, env steps) of ``fn() -> env steps``."""
    w, c = time.perf_counter(), time.process_time()
    steps = fn()
    return time.perf_counter() - w, time.process_time() - c, steps


def threads(config: Config):
    worker = AsyncWorker(config)
    worker.compile()
    return lambda: timed(lambda: train_seed(worker, 0).T)


def emulated(config: Config, seeds: tuple[int, ...], block: int | None = None):
    emu = Emulator(config)
    n, W = emu.num_updates, config.workers
    scheds = [(staleness.schedule(config.staleness, n, W, s),
               staleness.order(config.staleness, n, W, s)) for s in seeds]
    plan = emu.plan([t for t, _ in scheds], [o for _, o in scheds],
                    block or staleness.block_size(config.staleness, W))
    chunk = 10_000   # updates per call

    def measure():
        batch = Batch(emu, plan, seeds, scheds, chunk)          # compiled (cached) here

        def go():
            done = 0
            for _, out, _ in batch.chunks():
                done += int(out.valid.sum()) * emu.spu
            jnp.zeros(()).block_until_ready()
            return done
        return timed(go)
    return measure


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    base = resolve(Config(algo="a3c", env=args.env, workers=args.workers, envs_per_worker=1,
                          total_steps=args.total_steps, seeds=(0,), progress=False))
    emu = base.replace(backend="emulated", staleness="round-robin")
    W, seeds = args.workers, tuple(range(args.vmap_seeds))
    print(f"os.cpu_count() = {os.cpu_count()}; load average before: {os.getloadavg()}")
    settings = {f"{W} threads": threads(base.replace(backend="threads")),
                f"emulated W={W}, 1 seed": emulated(emu, (0,)),
                f"emulated W={W}, 1 seed, block 1": emulated(emu, (0,), block=1),
                f"emulated W={W}, {len(seeds)} seeds vmapped": emulated(emu, seeds)}
    rates = {}
    for label, measure in settings.items():
        best = max((measure() for _ in range(args.repeats)), key=lambda r: r[2] / r[0])
        wall, cpu, steps = best
        rates[label] = (steps / wall, steps / cpu)
        print(f"{label:38s} {steps / wall:>10,.0f} env steps/s  {steps / cpu:>10,.0f} per CPU s"
              f"   ({steps:,} steps in {wall:.1f} s; load {os.getloadavg()[0]:.1f})")
    base_wall, base_cpu = rates[f"{W} threads"]
    print()
    for label, (w, c) in rates.items():
        print(f"{label:38s} {w / base_wall:6.1f}x the threads (wall)  {c / base_cpu:6.1f}x (CPU)")
    if args.figure:
        staleness_report.plot_speed(list(rates), [w for w, _ in rates.values()], args.figure,
                                    f"A3C on {args.env}, W = {W} workers, "
                                    f"{os.cpu_count()} CPU cores")
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
