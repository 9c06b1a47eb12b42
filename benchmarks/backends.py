"""Backends side by side: threads, processes (shared memory) and Ray, against the ceiling.

For W workers x E envs: env steps/s of A3C on each backend, next to the ceiling measured in
the same run — the same per-worker update (snapshot, jitted step, in-place RMSProp write) in W
independent processes that share nothing, each on a private store. Rates count from the moment
all workers are compiled and released together (start-up and compilation excluded).

    python benchmarks/backends.py                       # W = 1 2 4, E = 1 8
    python benchmarks/backends.py --workers 1 2 4 8 16 --backends threads processes

Figures depend on the machine (cores, load): print, never assert.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import statistics
import sys
import time

import tyro

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # benchmarks/machine.py
import machine  # noqa: E402

from a3c_jax import _xla
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import AsyncWorker


@dataclasses.dataclass(frozen=True)
class Args:
    workers: tuple[int, ...] = (1, 2, 4)
    """Worker counts W."""
    envs_per_worker: tuple[int, ...] = (1, 8)
    """Environments per worker E."""
    backends: tuple[str, ...] = ("threads", "processes")
    """Backends to measure (add ray if installed)."""
    seconds: float = 4.0
    """Approximate seconds of training per measurement."""
    repeats: int = 1
    """Measurements per setting (median reported)."""
    env: str = "CartPole-v1"
    """Environment."""


def _config(a: Args, w: int, e: int, steps: int, backend: str) -> Config:
    return Config(algo="a3c", env=a.env, workers=w, envs_per_worker=e, total_steps=steps,
                  seeds=(0,), progress=False, lr_anneal=False, backend=backend)


def _independent(config_dict, seconds, ready, go, out):
    """One worker alone on a private store: the no-sharing ceiling."""
    from a3c_jax.config.schema import Config
    from a3c_jax.drivers.asynchronous.worker import AsyncWorker

    worker = AsyncWorker.from_config(Config.from_dict(config_dict))
    worker.compile()
    store = worker.make_store(0)
    records: list = []
    ready.put(1)
    go.wait()
    t0 = time.time()
    import threading

    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    worker.loop(0, 0, store, lambda: time.time() - t0, records)(stop)
    out.put((store.T, time.time() - t0))


def ceiling(a: Args, w: int, e: int) -> float:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    c = _config(a, 1, e, 10 ** 12, "threads")
    procs = [ctx.Process(target=_independent, args=(c.to_dict(), a.seconds, ready, go, out))
             for _ in range(w)]
    env = dict(os.environ)
    try:   # pools sized as the process backend sizes its workers' (a3c_jax._xla.pool_env)
        os.environ.update(_xla.pool_env(_xla.cores_per_worker(w, len(os.sched_getaffinity(0)))))
        for p in procs:
            p.start()
    finally:
        os.environ.clear()
        os.environ.update(env)
    for _ in procs:
        ready.get(timeout=600)
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return sum(t / dt for t, dt in results)


def backend_rate(a: Args, w: int, e: int, backend: str, guess: float) -> float:
    steps = int(max(guess * a.seconds, 5_000))
    worker = AsyncWorker.from_config(_config(a, w, e, steps, backend))
    if backend == "threads":
        worker.compile()    # the other backends compile in their workers, before the clock
    got = train_seed(worker, 0)   # the supervisor runs config.backend
    if got.stopped is not None:
        raise got.stopped
    return got.T / max(r.wall_time_s for r in got.records)


def main(a: Args) -> None:
    print(f"# backends on {a.env}, ~{a.seconds}s per run, on {machine.describe()}; peak load: "
          f"the highest 1-min load average during the row (goal <= 1.25 x the cores)")
    cols = " | ".join(f"{b} steps/s | {b} / ceiling" for b in a.backends)
    print(f"| W | E | ceiling (W independent processes) steps/s | {cols} | peak load |")
    print("|---|---|---|" + "---|---|" * len(a.backends) + "---|")
    for e in a.envs_per_worker:
        for w in a.workers:
            with machine.LoadPeak() as load:
                top = statistics.median(ceiling(a, w, e) for _ in range(a.repeats))
                cells = []
                for b in a.backends:
                    r = statistics.median(backend_rate(a, w, e, b, top)
                                          for _ in range(a.repeats))
                    cells.append(f"{r:,.0f} | {r / top:.0%}")
            print(f"| {w} | {e} | {top:,.0f} | " + " | ".join(cells) + f" | {load.peak:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
