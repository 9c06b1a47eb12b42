"""The asynchronous driver shared by A3C and the value-based methods.

An algorithm supplies, for one config: the initial flat parameters, a compiled per-worker step
and a ``worker_loop``. This module builds the shared store, starts the workers on threads
(``a3c_jax.workers``), follows T for the progress bar, and turns the per-update records every
worker appends into the common ``metrics.csv`` rows and ``updates.csv``. Seeds run one after
another, each a full multi-threaded run. Ctrl-C or a failing worker still writes everything
gathered so far; a failing worker's error is then re-raised.
"""

from __future__ import annotations

import collections
import heapq
import math
import threading
import time
from typing import Any, Callable, NamedTuple, Protocol

import numpy as np

from a3c_jax import workers
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


class FlatParams:
    """What every asynchronous algorithm shares: its parameters as one flat float32 vector
    (the store's layout) and each worker's key streams. Subclasses define ``init_params(key)``
    and set ``self._unravel`` (from ``ravel_pytree`` of their parameters)."""

    _unravel: Callable

    def init_params(self, key) -> Any:
        raise NotImplementedError

    def init_flat_params(self, seed: int) -> np.ndarray:
        import jax
        from jax.flatten_util import ravel_pytree

        k_params, _ = jax.random.split(jax.random.key(seed))
        flat, _ = ravel_pytree(self.init_params(k_params))
        return np.array(flat, np.float32)

    def unravel(self, flat: np.ndarray) -> Any:
        import jax
        import jax.numpy as jnp

        return jax.device_get(self._unravel(jnp.asarray(flat)))

    def worker_keys(self, seed: int, worker: int):
        """(env key, run key) of one worker: independent streams per seed and worker."""
        import jax

        _, k_workers = jax.random.split(jax.random.key(seed))
        return tuple(jax.random.split(jax.random.fold_in(k_workers, worker)))


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


class StopMonitor:
    """The early-stop statistic, exact: the episode-weighted mean return over the last
    ``window`` env steps, fed one update at a time in env-step order — what
    ``runlog.smoothed_returns`` gives on the per-update records (``runlog.updates_steps_to``).
    ``add`` returns True once the value has reached ``threshold`` (and stays True)."""

    def __init__(self, threshold: float, window: int):
        self.threshold, self.window = threshold, window
        self._entries: collections.deque = collections.deque()
        self._ret = self._eps = 0.0
        self.fired_at: int | None = None

    def add(self, env_steps: int, return_sum: float, episodes: float) -> bool:
        if self.fired_at is not None:
            return True
        self._entries.append((env_steps, return_sum, episodes))
        self._ret += return_sum
        self._eps += episodes
        while self._entries[0][0] <= env_steps - self.window:
            _, r, e = self._entries.popleft()
            self._ret -= r
            self._eps -= e
        if self._eps > 0 and self._ret / self._eps >= self.threshold:
            self.fired_at = env_steps
        return self.fired_at is not None


class RecordsMonitor:
    """``StopMonitor`` over the records the workers append (read from the driver's thread).

    Workers report out of env-step order, so the monitor only consumes the complete prefix:
    records up to the smallest "last reported env step" over the workers (each worker's own
    records arrive in increasing env-step order, so nothing at or below that step can still
    come). The stop decision is therefore exactly the per-update smoothed return computed after
    the run, never an artefact of arrival order."""

    def __init__(self, per_worker: list[list[UpdateRecord]], threshold: float, window: int):
        self.per_worker = per_worker
        self.monitor = StopMonitor(threshold, window)
        self.seen = [0] * len(per_worker)
        self.last = [0] * len(per_worker)
        self.pending: list[tuple[int, float, float]] = []

    def reached(self) -> bool:
        for w, rs in enumerate(self.per_worker):
            n = len(rs)
            for r in rs[self.seen[w]:n]:
                heapq.heappush(self.pending, (r.env_steps, r.return_sum, r.episodes))
                self.last[w] = r.env_steps
            self.seen[w] = n
        complete = min(self.last)
        while self.pending and self.pending[0][0] <= complete:
            self.monitor.add(*heapq.heappop(self.pending))
        return self.monitor.fired_at is not None


def make_monitor(config: Config, per_worker: list[list[UpdateRecord]]) -> RecordsMonitor | None:
    if not config.stop_return:
        return None
    return RecordsMonitor(per_worker, config.stop_return, config.stop_window)


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
    monitor = make_monitor(c, per_worker)

    def tick():
        if on_progress is not None:
            t = min(store.T, c.total_steps)
            on_progress(t - last_t[0])
            last_t[0] = t
        if monitor is not None and monitor.reached():
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
