"""Throughput of the asynchronous workers against the fully fused synchronous A2C.

For W workers x E envs per worker, A3C's env steps/s and updates/s (threads, shared RMSProp,
hogwild store), next to sync A2C with W*E envs measured in the same process; plus the
staleness distribution, the fraction of updates lost (store probe), and a breakdown of one
worker's update (snapshot copy, jitted step, host transfer, in-place write).

    python benchmarks/async_throughput.py               # W = 1 2 4, E = 1 8
    python benchmarks/async_throughput.py --workers 1 2 4 8 16 --seconds 5

Figures are medians over --repeats runs; they depend on the machine: print, never assert.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import threading
import time

import jax
import numpy as np
import tyro

from a3c_jax.config.schema import Config
from a3c_jax.drivers.records import staleness_summary
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.synchronous import make_train
from a3c_jax.drivers.asynchronous.worker import PHASES, AsyncWorker


@dataclasses.dataclass(frozen=True)
class Args:
    workers: tuple[int, ...] = (1, 2, 4)
    """Worker counts W to measure."""
    envs_per_worker: tuple[int, ...] = (1, 8)
    """Environments per worker E."""
    env: str = "CartPole-v1"
    """Environment."""
    seconds: float = 3.0
    """Approximate seconds per measured run."""
    repeats: int = 3
    """Runs per setting; medians are reported."""
    t_max: int = 5
    """Segment length."""
    store_mode: str = "hogwild"
    """Store mode for the async runs."""


def base_config(a: Args, **kw) -> Config:
    return Config(env=a.env, t_max=a.t_max, progress=False, seeds=(0,), lr_anneal=False,
                  **kw)


def measure_a3c(a: Args, w: int, e: int, rate_guess: float) -> dict:
    steps = int(max(rate_guess * a.seconds, 2_000))
    cfg = base_config(a, algo="a3c", workers=w, envs_per_worker=e, total_steps=steps,
                      store_mode=a.store_mode)
    worker = AsyncWorker.from_config(cfg)
    worker.compile()
    rates, urates, stale, lost = [], [], [], []
    for r in range(a.repeats):
        store = worker.make_store(r)
        t0 = time.perf_counter()
        got = train_seed(worker, r, store=store)
        wall = time.perf_counter() - t0
        if got.stopped is not None:
            raise got.stopped
        rates.append(got.T / wall)
        urates.append(store.version / wall)
        stale.append(staleness_summary(got.records))
        lost.append(got.lost["lost_fraction"])
    return {"sps": statistics.median(rates), "ups": statistics.median(urates),
            "stale_min": min(s["min"] for s in stale),
            "stale_mean": statistics.median(s["mean"] for s in stale),
            "stale_max": max(s["max"] for s in stale), "lost": max(lost)}


def measure_a2c(a: Args, n_envs: int) -> float:
    cfg = base_config(a, algo="a2c", num_envs=n_envs, total_steps=10 ** 9)
    trainer = make_train(cfg)
    state = jax.jit(trainer.init)(jax.random.key(0))
    chunk = 200
    run = jax.jit(lambda s: trainer.run_chunk(s, chunk)).lower(state).compile()
    state, _ = run(state)
    jax.block_until_ready(state)
    rates = []
    for _ in range(a.repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds / 2:
            state, m = run(state)
            jax.block_until_ready(state.params)
            n += chunk
        rates.append(n * cfg.steps_per_update / (time.perf_counter() - t0))
    return statistics.median(rates)


def breakdown(a: Args, e: int, workers: int, n: int = 1_500) -> dict:
    """Microseconds per phase of one update (``worker.PHASES``), from the worker loop's own
    profile, with ``workers`` threads on one store; and the update rate."""
    cfg = base_config(a, algo="a3c", workers=workers, envs_per_worker=e,
                      total_steps=n * workers * e * a.t_max)
    worker = AsyncWorker.from_config(cfg)
    worker.compile()
    store = worker.make_store(0)
    prof = [np.zeros(len(PHASES) + 1) for _ in range(workers)]
    recs: list[list] = [[] for _ in range(workers)]
    t0 = time.perf_counter()
    clock = lambda: time.perf_counter() - t0  # noqa: E731
    stop = threading.Event()
    threads = [threading.Thread(target=worker.loop(w, 0, store, clock, recs[w], prof[w]),
                                args=(stop,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    total = sum(prof)
    per = {k: 1e6 * total[i] / total[-1] for i, k in enumerate(PHASES)}
    return per | {"params": worker.num_params, "updates_per_s": total[-1] / wall}


def main(a: Args) -> None:
    print(f"# async throughput on {a.env}; jax {jax.__version__} on "
          f"{jax.devices()[0].platform}; os.cpu_count() = {os.cpu_count()}; "
          f"t_max = {a.t_max}; store = {a.store_mode}; medians of {a.repeats}")
    for e in a.envs_per_worker:
        one, two = breakdown(a, e, 1), breakdown(a, e, 2)
        print(f"\nE = {e}: one update, by phase (us; {one['params']} params; the step is "
              "unroll + loss + grad, dispatch and compute):")
        print("| threads | " + " | ".join(PHASES) + " | total | updates/s |")
        print("|---|" + "---|" * (len(PHASES) + 2))
        for w, b in ((1, one), (2, two)):
            tot = sum(b[k] for k in PHASES)
            print(f"| {w} | " + " | ".join(f"{b[k]:.0f}" for k in PHASES) +
                  f" | {tot:.0f} | {b['updates_per_s']:,.0f} |")
        print("(a phase that holds the GIL, or needs a core, grows with 2 threads on 2 cores; "
              "one that releases it keeps its 1-thread time)")
        print("| W | E | A3C env steps/s | A3C updates/s | A2C (W*E envs) env steps/s | "
              "A3C / A2C | A3C(W) / A3C(1) | staleness min/mean/max | lost |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = None
        guess = one["updates_per_s"] * a.t_max * e
        for w in a.workers:
            r = measure_a3c(a, w, e, guess * min(w, 2))
            sync = measure_a2c(a, w * e)
            base = base or r["sps"]
            print(f"| {w} | {e} | {r['sps']:,.0f} | {r['ups']:,.0f} | {sync:,.0f} | "
                  f"{r['sps'] / sync:.2f} | {r['sps'] / base:.2f} | "
                  f"{r['stale_min']}/{r['stale_mean']:.2f}/{r['stale_max']} | "
                  f"{r['lost']:.2%} |", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
