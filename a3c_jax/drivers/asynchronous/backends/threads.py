"""Thread backend: W worker loops on Python threads in this process, on one ``SharedStore``.

A launch starts the threads at once and is then polled by the supervisor
(``a3c_jax.drivers.asynchronous.supervisor``):

* all loops return normally when the global step budget is spent;
* an exception in any worker sets the stop event so the others leave their loop at the next
  update, every thread is joined, and ``poll`` raises ``WorkerError`` naming the worker and
  carrying its traceback;
* ``stop`` (early stop, Ctrl-C in the supervisor) sets the event; ``close`` joins.

The supervisor waits in short ``join`` timeouts so the main thread stays responsive to
signals. Workers check the event once per update.
"""

from __future__ import annotations

import threading
import time
import traceback

from a3c_jax.drivers.asynchronous.backends.launch import LocalStoreLaunch
from a3c_jax.drivers.asynchronous.store_state import restore_store, store_state
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, WorkerError


class ThreadLaunch(LocalStoreLaunch):
    """One seed's W worker threads (``launch.Launch``); ``restore`` is a
    ``store_state.store_state`` to start the store from."""

    def __init__(self, worker: AsyncWorker, seed: int, per_worker: list[list],
                 store: SharedStore | None = None, join_timeout_s: float = 60.0,
                 restore: dict | None = None):
        worker.compile()
        self.store = store if store is not None else worker.make_store(seed)
        if restore is not None:
            restore_store(self.store, restore)
        self.final_store: dict | None = None
        self.join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._errors: list[tuple[int, BaseException, str]] = []
        self._lock = threading.Lock()
        t0 = time.perf_counter()
        clock = lambda: time.perf_counter() - t0  # noqa: E731
        loops = [worker.loop(w, seed, self.store, clock, per_worker[w])
                 for w in range(len(per_worker))]
        self.threads = [threading.Thread(target=self._target, args=(i, fn), daemon=True,
                                         name=f"a3c-worker-{i}") for i, fn in enumerate(loops)]
        for t in self.threads:
            t.start()

    def _target(self, i: int, fn) -> None:
        try:
            fn(self._stop)
        except BaseException as exc:  # noqa: BLE001 - reported by poll
            with self._lock:
                self._errors.append((i, exc, traceback.format_exc()))
            self._stop.set()

    def poll(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; True while any worker runs. Raises the first failure."""
        for t in self.threads:
            t.join(timeout=timeout / len(self.threads))
        if self._errors:
            self.close()
            i, exc, tb = self._errors[0]
            raise WorkerError(i, f"{type(exc).__name__}: {exc}", tb) from exc
        return any(t.is_alive() for t in self.threads)

    def close(self) -> tuple:
        """Stop and join every worker; (final flat params, lost-update accounting, T)."""
        self._stop.set()
        deadline = time.monotonic() + self.join_timeout_s
        for t in self.threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"workers did not stop within {self.join_timeout_s}s: {alive}")
        self.final_store = store_state(self.store)
        return self.store.params.copy(), self.store.lost_updates(), self.store.T
