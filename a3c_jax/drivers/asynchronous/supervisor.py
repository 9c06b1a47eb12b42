"""One supervisor for every asynchronous backend: launch W loops, follow them, stop them.

A backend only launches W worker loops against a store and streams their records back: a
``backends.launch.Launch`` (``poll(timeout) -> running``, ``T``, ``stop()``, ``store_state()``,
``close() -> (flat params, lost, T)`` and ``final_store``; ``threads.ThreadLaunch``,
``processes.ProcessLaunch``, ``ray_actors.RayLaunch``).
``train_seed`` runs one seed on ``config.backend``: it reports progress, applies the early
stop (``records.RecordsMonitor``, exact), and turns Ctrl-C (or SIGTERM, which
``a3c_jax.shell.signals`` raises as a ``KeyboardInterrupt``) or a failing worker into a clean stop
that still returns everything gathered, with the interruption beside it. ``on_tick(running,
per_worker)`` is called at every tick while the workers run (the run shell bins the records
that arrived and writes periodic checkpoints there); ``restore`` starts the store from a
checkpoint (``a3c_jax.drivers.asynchronous.store_state``), and ``SeedRun.store`` is the
store's final state.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from a3c_jax.drivers.records import UpdateRecord, make_monitor
from a3c_jax.drivers.asynchronous.backends.launch import Launch
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged, WorkerError


@dataclasses.dataclass
class SeedRun:
    """What one seed of an asynchronous run produced."""

    flat_params: object              # final shared parameters (flat float32)
    lost: dict                       # the store's lost-update accounting
    T: int                           # the global step counter at the end
    records: list[UpdateRecord]
    stopped: BaseException | None    # KeyboardInterrupt, WorkerError or Diverged, if one
    store: dict | None = None        # the store's final buffers and counters (resume)
    restarts: list[dict] = dataclasses.field(default_factory=list)   # workers started again


def launch(worker: AsyncWorker, seed: int, per_worker: list[list], loss_fn=None,
           store: SharedStore | None = None, on_start: Callable | None = None,
           restore: dict | None = None) -> Launch:
    """Start ``config.backend``'s W loops for ``seed``."""
    backend = worker.config.backend
    if backend == "threads":
        from a3c_jax.drivers.asynchronous.backends.threads import ThreadLaunch

        return ThreadLaunch(worker, seed, per_worker, store=store, restore=restore)
    if store is not None:
        raise ValueError(f"backend {backend!r} builds its own store")
    if backend == "processes":
        from a3c_jax.drivers.asynchronous.backends.processes import ProcessLaunch

        return ProcessLaunch(worker, seed, per_worker, loss_fn=loss_fn, on_start=on_start,
                             restore=restore)
    if backend == "ray":
        from a3c_jax.drivers.asynchronous.backends.ray_actors import RayLaunch

        return RayLaunch(worker, seed, per_worker, loss_fn=loss_fn, restore=restore)
    raise ValueError(f"backend: {backend!r} does not run asynchronous workers")


def train_seed(worker: AsyncWorker, seed: int, on_progress: Callable[[int], None] | None = None,
               loss_fn=None, store: SharedStore | None = None,
               on_start: Callable | None = None, tick_s: float = 0.1,
               per_worker: list[list] | None = None, on_tick: Callable | None = None,
               restore: dict | None = None) -> SeedRun:
    """Run W workers for one seed on ``worker.config.backend``; see the module docstring.
    ``loss_fn`` must be picklable for the process and Ray backends (it is rebuilt there);
    ``per_worker`` (W empty lists) receives the records as they arrive."""
    c = worker.config
    if per_worker is None:
        per_worker = [[] for _ in range(c.workers)]
    monitor = make_monitor(c, per_worker)
    stopped: BaseException | None = None
    last_t = 0
    running: Launch | None = None
    try:
        running = launch(worker, seed, per_worker, loss_fn, store, on_start, restore)
        while running.poll(tick_s):
            if on_tick is not None:
                on_tick(running, per_worker)
            if on_progress is not None:
                t = min(running.T, c.total_steps)
                on_progress(t - last_t)
                last_t = t
            if monitor is not None and monitor.reached():
                running.stop()
    except (KeyboardInterrupt, WorkerError) as exc:
        # a worker that diverged stops the seed as a result, not as a failure
        stopped = exc.__cause__ if isinstance(exc.__cause__, Diverged) else exc
    finally:
        final = running.close() if running is not None else (None, {}, 0)
    flat, lost, T = final
    if on_progress is not None:
        on_progress(min(T, c.total_steps) - last_t)
    return SeedRun(flat, lost, T, [r for rs in per_worker for r in rs], stopped,
                   running.final_store if running is not None else None,
                   list(getattr(running, "restarts", [])))
