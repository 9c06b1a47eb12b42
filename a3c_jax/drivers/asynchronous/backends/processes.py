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
import time
import traceback
from typing import Callable

from a3c_jax import _xla
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store_state import (build_worker, restore_store, store_state,
                                                      worker_points)
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.backends.launch import LocalStoreLaunch
from a3c_jax.drivers.asynchronous.backends.shared_memory import (SHM_PREFIX, Reaper,
                                                                 SharedMemoryStore, attach,
                                                                 watch_parent)  # noqa: F401
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, WorkerError

_RECORD_BATCH = 256
_FLUSH_S = 0.25


class _QueueRecords(list):
    """A list the worker loop appends to; records go to the parent in batches."""

    def __init__(self, q, worker: int):
        super().__init__()
        self.q, self.worker, self.buf, self.last = q, worker, [], time.monotonic()

    def append(self, rec) -> None:  # noqa: D401 - list API
        self.buf.append(tuple(rec))
        if len(self.buf) >= _RECORD_BATCH or time.monotonic() - self.last > _FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.q.put(("records", self.worker, self.buf))
            self.buf = []
        self.last = time.monotonic()


def _worker_main(worker: int, seed: int, config_dict: dict, loss_fn, spec: dict, q,
                 stop, go, start_time, parent_pid: int, points, cpus=None) -> None:
    if cpus is not None:   # before JAX opens its backend, which sizes pools by the mask
        os.sched_setaffinity(0, cpus)
    watch_parent(parent_pid, spec)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # the parent coordinates Ctrl-C and SIGTERM
    segs: list = []
    records = None
    try:
        runner = build_worker(config_dict, loss_fn, points)  # resolved by the parent
        runner.compile()
        memory, segs = attach(spec)
        store = SharedStore(memory.params, runner.spec, runner.config.store_mode,
                            with_target=memory.target is not None, memory=memory)
        q.put(("ready", worker, None))
        go.wait()
        t0 = start_time.value
        records = _QueueRecords(q, worker)
        runner.loop(worker, seed, store, lambda: time.time() - t0, records)(stop)
        records.flush()
        q.put(("done", worker, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        if records is not None:
            records.flush()  # what the failing worker gathered still reaches the parent
        q.put(("error", worker, (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    finally:
        for seg in segs:
            try:
                seg.close()
            except BufferError:
                pass
    # Everything is sent once the queue's feeder thread has flushed; skip the slow teardown of
    # the JAX runtime at interpreter exit (seconds), so a stopped run ends promptly.
    q.close()
    q.join_thread()
    os._exit(0)


class WorkerProcessError(WorkerError):
    """A worker process raised or died."""


class ProcessLaunch(LocalStoreLaunch):
    """One seed's W worker processes (``launch.Launch``); ``on_start`` receives the processes
    once all have started training (tests use it); ``restore`` is a ``resume.store_state`` to
    start the store from."""

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
                                     worker.with_target, ctx)
        self.store = SharedStore(self.shm.memory.params, worker.spec, c.store_mode,
                                 with_target=worker.with_target, memory=self.shm.memory)
        if restore is not None:
            try:
                restore_store(self.store, restore)
            except BaseException:
                self.shm.unlink()
                raise
        self.q = ctx.Queue()
        self._stop, self.go = ctx.Event(), ctx.Event()
        self.start_time = ctx.Value("d", 0.0)
        self.procs: list = []
        self.reaper: Reaper | None = None
        self._final: tuple | None = None
        self.ready: set[int] = set()
        self.finished: set[int] = set()
        self.started = False
        self.deadline = time.monotonic() + ready_timeout_s
        self.ready_timeout_s = ready_timeout_s
        env = dict(os.environ)
        try:
            cores = _child_env(c.workers)
            cpus = sorted(os.sched_getaffinity(0))
            self.procs = [ctx.Process(target=_worker_main, name=f"a3c-proc-{w}", daemon=True,
                                      args=(w, seed, c.to_dict(), loss_fn, self.shm.spec(),
                                            self.q, self._stop, self.go, self.start_time,
                                            os.getpid(), worker_points(worker),
                                            _xla.worker_cpus(w, cores, cpus)))
                          for w in range(c.workers)]
            for p in self.procs:
                p.start()
            self.reaper = Reaper([p.pid for p in self.procs],
                                 [seg.name for seg in self.shm.segments.values()])
        except BaseException:
            self.close()
            raise
        finally:
            os.environ.clear()
            os.environ.update(env)

    def _handle(self, kind, w, payload) -> None:
        if kind == "ready":
            self.ready.add(w)
        elif kind == "records":
            self.per_worker[w].extend(UpdateRecord(*r) for r in payload)
        elif kind == "done":
            self.finished.add(w)
        elif kind == "error":
            raise WorkerProcessError(w, payload[0], payload[1])

    def poll(self, timeout: float) -> bool:
        """Handle messages for up to ``timeout`` s; True while the workers run. Raises
        ``WorkerProcessError`` for a worker that failed or died."""
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
                raise WorkerProcessError(i, f"worker process died ({how})")

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
        for p in started:
            if p.is_alive():
                p.kill()
            p.join(timeout=5)
        self._drain(0.2)
        self.final_store = store_state(self.store)
        self._final = self.store.params.copy(), self.store.lost_updates(), self.store.T
        del self.store
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
                self.per_worker[w].extend(UpdateRecord(*r) for r in payload)
            elif kind in ("done", "error"):   # its last records came before this
                self.finished.add(w)


def _child_env(workers: int) -> int | None:
    """Set the environment the spawned workers inherit (the caller restores it): pools sized
    to each worker's cores (module docstring), no GPU grab. Returns the cores per worker."""
    cores = _xla.cores_per_worker(workers, len(os.sched_getaffinity(0)))
    os.environ.update(_xla.pool_env(cores))
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return cores
