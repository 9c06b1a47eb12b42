"""Process backend: worker processes on a store in ``multiprocessing.shared_memory``.

Threads share one interpreter, so past two workers the Python work of each update holds the
GIL. Here every worker is a process with its own JAX runtime; the shared parameters, the shared
RMSProp statistics, the target parameters, the probe and the integer counters live in
shared-memory segments that every worker maps as NumPy arrays. Reads and in-place writes are
exactly those of the thread backend (``a3c_jax.drivers.asynchronous.store.SharedStore``, same code): lock-free in
``hogwild`` mode; the integer counters are advanced under a ``multiprocessing.Lock`` that covers
the integers only; ``locked`` mode takes a second process lock around the whole update.

Lifecycle (``ProcessLaunch``, polled by ``a3c_jax.drivers.asynchronous.supervisor`` like every backend): processes
are started with the ``spawn`` method (JAX is not fork-safe), build the same ``AsyncWorker``
from the resolved config, compile, report ready, and start together. They run the one worker
loop and stream their update records to the parent through a queue. A worker that raises
sends its traceback (after flushing the records it gathered) and the run stops with it; a
worker that dies (e.g. SIGKILL) is noticed from its exit code and the run stops with a clear
message. Workers ignore SIGINT and SIGTERM: the parent coordinates both (``a3c_jax.shell.signals``),
stopping every worker at its next update and gathering its last records (``close``: within
``stop_timeout_s``; during warm-up, when there is nothing to gather, the workers are killed at
once). Shared-memory segments are unlinked in every case (``close``), and their names start
with ``a3cjax_`` so leftovers are easy to spot.

When the parent dies without cleaning up (SIGKILL, out of memory), a reaper process
(``shm.Reaper``, started with the workers) kills them and unlinks every segment at once, in
any phase (warm-up, waiting to start, training); each worker's own watchdog thread
(``shm.watch_parent``) does the same for itself within ``shm.WATCHDOG_S`` should the reaper
be gone too.

Thread pools: each worker process is given ``k = cpu_count // W`` cores (at least 1), and
every pool it starts is sized to them (``a3c_jax._xla.pool_env``: ``NPROC`` for XLA:CPU's pools,
``OMP/OPENBLAS/MKL_NUM_THREADS``, ``A3C_JAX_CORES`` for the ALE vector env's threads, and
``--xla_cpu_multi_thread_eigen=false`` when k = 1); sized to the whole machine, 16 workers on
16 cores ran ~60 threads each (load average 64). Override: ``A3C_JAX_WORKER_CORES=k`` (or
``all`` to leave the pools as JAX sizes them); a pool variable already in the environment wins.
``A3C_JAX_PIN_WORKERS=1`` also pins worker w to its own k cores (``os.sched_setaffinity``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_lib
import signal
import sys
import time
from typing import Callable

from a3c_jax import _xla
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store_state import restore_store, store_state, worker_points
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.backends.launch import LocalStoreLaunch
from a3c_jax.drivers.asynchronous.backends.process_worker import (RecordRing, SharedFlag,
                                                                  ring_layout,
                                                                  worker_main)
from a3c_jax.drivers.asynchronous.backends.shared_memory import (SHM_PREFIX, Reaper,  # noqa: F401
                                                                 SharedMemoryStore)
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged, WorkerError

class WorkerProcessError(WorkerError):
    """A worker process raised or died."""


class ProcessLaunch(LocalStoreLaunch):
    """One seed's W worker processes (``launch.Launch``); ``on_start`` receives the processes
    once all have started training (tests use it; a restarted worker's process replaces its
    entry); ``restore`` is a ``resume.store_state`` to start the store from."""

    def __init__(self, worker: AsyncWorker, seed: int, per_worker: list[list], loss_fn=None,
                 on_start: Callable[[list], None] | None = None,
                 ready_timeout_s: float = 300.0, restore: dict | None = None,
                 stop_timeout_s: float = 3.0):
        c = worker.config
        self.W, self.per_worker, self.on_start = c.workers, per_worker, on_start
        self.stop_timeout_s = stop_timeout_s
        self.final_store: dict | None = None
        ctx = mp.get_context("spawn")
        self.shm = SharedMemoryStore(worker.init_flat_params(seed), worker.spec.uses_shared_stats,
                                     worker.with_target, ctx, extra=ring_layout(c.workers))
        self.ring = RecordRing(self.shm.segments, c.workers)
        self.store = SharedStore(self.shm.memory.params, worker.spec, c.store_mode,
                                 with_target=worker.with_target, memory=self.shm.memory)
        if restore is not None:
            try:
                restore_store(self.store, restore)
            except BaseException:
                self.shm.unlink()
                raise
        self.q = ctx.Queue()
        # lock-free: a worker killed inside a locked Event or Value call would hold its lock
        self._stop, self.go = SharedFlag(ctx), SharedFlag(ctx)
        self.start_time = ctx.RawValue("d", 0.0)
        self.procs: list = []
        self.retired: list = []           # processes replaced by a restart
        self.restarts: list[dict] = []    # worker, time_s, T, cause of each restart
        self.max_restarts, self.budget = c.max_restarts, c.total_steps
        self.received = [0] * c.workers   # records the queue delivered per current process
        self.offset = [0] * c.workers     # update index of a restarted process's first record
        self.reaper: Reaper | None = None
        self._final: tuple | None = None
        self.ready: set[int] = set()
        self.finished: set[int] = set()
        self.started = False
        self.deadline = time.monotonic() + ready_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self._spawn = lambda w, restart: ctx.Process(
            target=worker_main, name=f"a3c-proc-{w}", daemon=True,
            args=(w, seed, c.to_dict(), loss_fn, self.shm.spec(), self.q, self._stop, self.go,
                  self.start_time, os.getpid(), worker_points(worker),
                  _xla.worker_cpus(w, self.cores, self.cpus), restart))
        try:
            self._start(list(range(c.workers)))
        except BaseException:
            self.close()
            raise

    def _start(self, workers: list[int], restart: tuple[int, int] | None = None) -> None:
        """Start (or start again) the processes of ``workers``; the reaper follows them."""
        env = dict(os.environ)
        try:
            self.cores = _child_env(self.W)
            self.cpus = sorted(os.sched_getaffinity(0))
            for w in workers:
                p = self._spawn(w, restart)
                if w < len(self.procs):
                    self.procs[w] = p
                else:
                    self.procs.append(p)
                p.start()
        finally:
            os.environ.clear()
            os.environ.update(env)
        if self.reaper is not None:
            self.reaper.close()
        self.reaper = Reaper([p.pid for p in self.procs],
                             [seg.name for seg in self.shm.segments.values()])

    def _records(self, w: int, payload) -> None:
        self.received[w] += len(payload)
        self.per_worker[w].extend(UpdateRecord(*r)._replace(update=r[1] + self.offset[w])
                                  for r in payload)

    def _handle(self, kind, w, payload) -> None:
        if kind == "ready":
            self.ready.add(w)
        elif kind == "records":
            self._records(w, payload)
        elif kind == "done":
            self.finished.add(w)
        elif kind == "error":
            self._failed(w, payload[0], payload[1], diverged=payload[2])

    def _failed(self, w: int, cause: str, tb: str = "", diverged: Diverged | None = None
                ) -> None:
        """Worker ``w``'s process raised or died (all its records are in): start it again,
        or raise ``WorkerProcessError`` (caused by the worker's ``Diverged``, if it diverged:
        the seed's result, never restarted)."""
        if diverged is not None:
            raise WorkerProcessError(w, cause, tb) from diverged
        if len(self.restarts) >= self.max_restarts:
            after = f" (after {len(self.restarts)} restarts)" if self.restarts else ""
            raise WorkerProcessError(w, cause + after, tb)
        self.retired.append(self.procs[w])
        if self._stop.is_set() or self.store.T >= self.budget:
            self.finished.add(w)   # nothing left for it to do
            return
        when = time.time() - self.start_time.value if self.started else 0.0
        self.restarts.append({"worker": w, "time_s": round(when, 3), "T": self.store.T,
                              "cause": cause})
        print(f"worker {w} restarted ({len(self.restarts)} of at most {self.max_restarts}) "
              f"at T={self.store.T}: {cause}", file=sys.stderr, flush=True)
        self.offset[w] = len(self.per_worker[w])
        self.received[w] = 0
        self.ring.reset(w)
        self.ready.discard(w)
        if not self.started:
            self.deadline = time.monotonic() + self.ready_timeout_s
        self._start([w], (len(self.restarts), self.store.T))

    def poll(self, timeout: float) -> bool:
        """Handle messages for up to ``timeout`` s; True while the workers run. Raises
        ``WorkerProcessError`` for a worker that failed or died past its restarts."""
        end = time.monotonic() + timeout
        while True:
            try:
                kind, w, payload = self.q.get(timeout=max(end - time.monotonic(), 0.0))
            except queue_lib.Empty:
                kind = w = payload = None
            self._handle(kind, w, payload)
            if not self.started and len(self.ready) == self.W:
                self.start_time.value = time.time()
                self.go.set()
                self.started = True
                if self.on_start is not None:
                    self.on_start(self.procs)
            if not self.started and time.monotonic() > self.deadline:
                raise WorkerProcessError(-1, f"workers not ready after {self.ready_timeout_s}s")
            if kind is None:
                self._check_dead()
            if len(self.finished) == self.W:
                return False
            if kind is None or time.monotonic() >= end:
                return True

    def _check_dead(self) -> None:
        for i, p in enumerate(self.procs):
            if p.exitcode not in (None, 0) and i not in self.finished:
                code = p.exitcode
                how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                       else f"exit code {code}")
                self._settle()
                missed, lost = self.ring.missed(i, self.received[i])
                self._records(i, [tuple(r) for r in missed])
                if lost:
                    print(f"worker {i}: {lost} update records lost with its process",
                          file=sys.stderr, flush=True)
                self._failed(i, f"worker process died ({how})")

    def _settle(self) -> None:
        """Handle what is in the queue now: a dead process's last batches are among it."""
        while True:
            try:
                kind, w, payload = self.q.get(timeout=0.05)
            except queue_lib.Empty:
                return
            self._handle(kind, w, payload)

    def close(self) -> tuple:
        """Stop and reap every worker, gather the last records, release the segments;
        (final flat params, lost-update accounting, T). Safe to call again. Workers still
        warming up are killed at once (they hold nothing); training workers get
        ``stop_timeout_s`` to finish their update and flush, while the queue is drained."""
        if self._final is not None:
            return self._final
        self._stop.set()
        self.go.set()
        started = [p for p in self.procs if p.pid is not None]
        if not self.started:
            for p in started:
                p.kill()
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline and any(
                p.is_alive() and i not in self.finished for i, p in enumerate(started)):
            self._drain(0.05)   # a worker cannot exit while its queue data is unread
        for p in started + self.retired:
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        self._drain(0.2)
        self.final_store = store_state(self.store)
        self._final = self.store.params.copy(), self.store.lost_updates(), self.store.T
        del self.store
        del self.ring
        self.shm.unlink()
        if self.reaper is not None:
            self.reaper.close()
        return self._final

    def _drain(self, timeout: float) -> None:
        while True:
            try:
                kind, w, payload = self.q.get(timeout=timeout)
            except (queue_lib.Empty, EOFError, OSError):
                return
            if kind == "records":
                self._records(w, payload)
            elif kind in ("done", "error"):   # its last records came before this
                self.finished.add(w)


def _child_env(workers: int) -> int | None:
    """Set the environment the spawned workers inherit (the caller restores it): pools sized
    to each worker's cores (module docstring), no GPU grab. Returns the cores per worker."""
    cores = _xla.cores_per_worker(workers, len(os.sched_getaffinity(0)))
    os.environ.update(_xla.pool_env(cores))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return cores
