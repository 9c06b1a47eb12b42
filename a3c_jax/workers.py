"""Asynchronous actor-learners on Python threads, and their lifecycle.

``run_threads(fns)`` starts one thread per callable ``fn(stop: threading.Event)`` and waits:

* all return normally when their loop ends (the global step budget is spent);
* an exception in any worker sets ``stop`` so the others leave their loop at the next update,
  joins them all, and raises ``WorkerError`` in the caller naming the worker and carrying its
  traceback (the original exception is the ``__cause__``);
* Ctrl-C (``KeyboardInterrupt`` in the main thread) sets ``stop``, joins every worker and
  re-raises, so the caller can flush what it gathered.

The main thread waits in short ``join`` timeouts so it stays responsive to signals, and can
run ``on_tick`` (progress bars) meanwhile. Workers must check ``stop`` once per update.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Callable, Sequence


class WorkerError(RuntimeError):
    """A worker raised; carries its id and formatted traceback."""

    def __init__(self, worker: int, exc: BaseException, tb: str):
        super().__init__(f"worker {worker} failed with {type(exc).__name__}: {exc}\n"
                         f"--- worker {worker} traceback ---\n{tb}")
        self.worker = worker
        self.exc = exc
        self.traceback = tb


def run_threads(fns: Sequence[Callable[[threading.Event], None]],
                on_tick: Callable[[], None] | None = None, tick_s: float = 0.1,
                join_timeout_s: float = 60.0, stop: threading.Event | None = None) -> None:
    """Run the workers to completion; see the module docstring. ``stop`` may be set by the
    caller (e.g. from ``on_tick``) to end the run early and cleanly."""
    stop = stop if stop is not None else threading.Event()
    errors: list[tuple[int, BaseException, str]] = []
    errors_lock = threading.Lock()

    def target(i: int, fn):
        try:
            fn(stop)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            with errors_lock:
                errors.append((i, exc, traceback.format_exc()))
            stop.set()

    threads = [threading.Thread(target=target, args=(i, fn), name=f"a3c-worker-{i}",
                                daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=tick_s / max(len(threads), 1))
            if on_tick is not None:
                on_tick()
    except KeyboardInterrupt:
        stop.set()
        _join_all(threads, join_timeout_s)
        raise
    stop.set()
    _join_all(threads, join_timeout_s)
    if errors:
        i, exc, tb = errors[0]  # the first to fail
        raise WorkerError(i, exc, tb) from exc


def _join_all(threads, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for t in threads:
        t.join(timeout=max(deadline - time.monotonic(), 0.0))
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        raise RuntimeError(f"workers did not stop within {timeout_s}s: {alive}")
