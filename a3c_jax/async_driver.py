"""The asynchronous driver shared by A3C and the value-based methods.

An algorithm supplies, for one config: the initial flat parameters, a compiled per-worker step
and a ``worker_loop``. This module builds the shared store, starts the workers on threads
(``a3c_jax.workers``), follows T for the progress bar, and turns the per-update records every
worker appends into the common ``metrics.csv`` rows and ``updates.csv``. Seeds run one after
another, each a full multi-threaded run. Ctrl-C or a failing worker still writes everything
gathered so far; a failing worker's error is then re-raised.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np

from a3c_jax import runlog, workers
from a3c_jax.config import Config
from a3c_jax.runner import RunResult, _progress, write_run
from a3c_jax.shared import OptSpec, SharedStore


class UpdateRecord(NamedTuple):
    """What a worker appends after each write to the store."""

    worker: int
    update: int           # this worker's update index
    env_steps: int        # global T after this segment's claim
    wall_time_s: float
    version_read: int
    version_written: int
    staleness: int
    return_sum: float     # sum of returns of episodes completed in the segment
    episodes: float
    policy_loss: float
    value_loss: float
    entropy: float
    total_loss: float


class AsyncAlgorithm(Protocol):
    config: Config
    with_target: bool

    def init_flat_params(self, seed: int) -> np.ndarray: ...

    def unravel(self, flat: np.ndarray) -> Any: ...

    def compile(self) -> None: ...

    def worker_loop(self, worker: int, seed: int, store: SharedStore, clock: Callable[[], float],
                    records: list) -> Callable: ...


def rows_from_records(config: Config, seed: int, records: list[UpdateRecord]) -> list[dict]:
    """Bin update records by global env steps into metrics.csv rows (same schema as A2C)."""
    if not records:
        return []
    records = sorted(records, key=lambda r: (r.env_steps, r.version_written))
    interval = config.log_interval or max(config.total_steps // 200, 1)
    rows = []
    bins: dict[int, list[UpdateRecord]] = {}
    for r in records:
        bins.setdefault(math.ceil(r.env_steps / interval), []).append(r)
    for _, rs in sorted(bins.items()):
        n = sum(r.episodes for r in rs)
        rows.append({
            "algo": config.algo, "seed": seed, "env_steps": max(r.env_steps for r in rs),
            "wall_time_s": max(r.wall_time_s for r in rs),
            "episode_return": sum(r.return_sum for r in rs) / n if n else float("nan"),
            "episodes": int(n),
            "policy_loss": float(np.mean([r.policy_loss for r in rs])),
            "value_loss": float(np.mean([r.value_loss for r in rs])),
            "entropy": float(np.mean([r.entropy for r in rs])),
            "total_loss": float(np.mean([r.total_loss for r in rs])),
            "staleness": float(np.mean([r.staleness for r in rs])),
        })
    return rows


def update_rows(seed: int, records: list[UpdateRecord]) -> list[dict]:
    return [dict(r._asdict(), seed=seed) for r in sorted(records, key=lambda r: r.version_written)]


def staleness_summary(records: list[UpdateRecord]) -> dict:
    if not records:
        return {"min": float("nan"), "mean": float("nan"), "max": float("nan")}
    s = np.array([r.staleness for r in records])
    return {"min": int(s.min()), "mean": float(s.mean()), "max": int(s.max())}


def make_store(algo: AsyncAlgorithm, seed: int) -> SharedStore:
    c = algo.config
    return SharedStore(algo.init_flat_params(seed), OptSpec.from_config(c), c.store_mode,
                       with_target=algo.with_target)


class SmoothedReturn:
    """Episode-weighted mean return over the last ``window`` env steps, fed incrementally
    from the workers' record lists (read from the main thread while workers append)."""

    def __init__(self, per_worker: list[list[UpdateRecord]], window: int):
        self.per_worker = per_worker
        self.window = window
        self.seen = [0] * len(per_worker)
        self.recent: list[tuple[int, float, float]] = []

    def value(self) -> float:
        for w, rs in enumerate(self.per_worker):
            n = len(rs)
            self.recent += [(r.env_steps, r.return_sum, r.episodes) for r in rs[self.seen[w]:n]]
            self.seen[w] = n
        if not self.recent:
            return float("nan")
        horizon = max(s for s, _, _ in self.recent) - self.window
        self.recent = [x for x in self.recent if x[0] > horizon]
        n = sum(e for _, _, e in self.recent)
        return sum(r for _, r, _ in self.recent) / n if n else float("nan")


def train_one_seed(algo: AsyncAlgorithm, seed: int, on_progress: Callable[[int], None] | None
                   = None, store: SharedStore | None = None
                   ) -> tuple[SharedStore, list[UpdateRecord], BaseException | None]:
    """Run W workers for one seed. Returns the store, the records and the interruption
    (KeyboardInterrupt or WorkerError) if one happened, instead of raising it."""
    c = algo.config
    store = store if store is not None else make_store(algo, seed)
    per_worker: list[list[UpdateRecord]] = [[] for _ in range(c.workers)]
    t0 = time.perf_counter()
    clock = lambda: time.perf_counter() - t0  # noqa: E731
    loops = [algo.worker_loop(w, seed, store, clock, per_worker[w]) for w in range(c.workers)]
    last_t = [0]
    stop = threading.Event()
    smoothed = SmoothedReturn(per_worker, c.stop_window) if c.stop_return else None

    def tick():
        if on_progress is not None:
            t = min(store.T, c.total_steps)
            on_progress(t - last_t[0])
            last_t[0] = t
        if smoothed is not None and smoothed.value() >= c.stop_return:
            stop.set()

    stopped: BaseException | None = None
    try:
        workers.run_threads(loops, on_tick=tick, stop=stop)
    except (KeyboardInterrupt, workers.WorkerError) as exc:
        stopped = exc
    tick()
    return store, [r for rs in per_worker for r in rs], stopped


def build_async_algorithm(config: Config, loss_fn=None) -> AsyncAlgorithm:
    """The asynchronous algorithm object for ``config.algo`` (used in worker processes too)."""
    if config.algo == "a3c":
        from a3c_jax.a3c import A3C

        return A3C(config, loss_fn)
    from a3c_jax import qlearning

    return qlearning.make_async_algorithm(config)


def run_async(algo: AsyncAlgorithm, write: bool = True, loss_fn=None) -> RunResult:
    """Train every seed with ``config.backend`` and write the run directory."""
    c = algo.config
    if c.backend == "threads":
        algo.compile()
    rows: list[dict] = []
    urows: list[dict] = []
    params: dict[int, Any] = {}
    extras: dict = {"staleness": {}, "lost": {}, "backend": c.backend}
    interrupted = False
    failure: BaseException | None = None
    bar = _progress(c, c.algo)
    try:
        for seed in c.seeds:
            bar.reset()
            if c.backend == "threads":
                store, records, stopped = train_one_seed(algo, seed, bar.update)
                flat, lost = store.params.copy(), store.lost_updates()
            elif c.backend == "processes":
                from a3c_jax.procs import train_one_seed_processes

                flat, acct, records, stopped = train_one_seed_processes(
                    algo, seed, bar.update, loss_fn=loss_fn)
                lost = acct["lost"]
            else:
                from a3c_jax.ray_backend import train_one_seed_ray

                flat, acct, records, stopped = train_one_seed_ray(algo, seed, bar.update,
                                                                  loss_fn=loss_fn)
                lost = acct["lost"]
            rows += rows_from_records(c, seed, records)
            urows += update_rows(seed, records)
            params[seed] = algo.unravel(flat)
            extras["staleness"][seed] = staleness_summary(records)
            extras["lost"][seed] = lost
            if isinstance(stopped, KeyboardInterrupt):
                interrupted = True
                break
            if stopped is not None:
                failure = stopped
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    result = RunResult(config=c, run_dir=None, rows=rows, params=params,
                       interrupted=interrupted, update_rows=urows, extras=extras)
    if write:
        from pathlib import Path

        result.run_dir = Path(c.out)
        write_run(result)
    if failure is not None:
        raise failure
    return result
