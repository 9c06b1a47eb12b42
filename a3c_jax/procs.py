"""Process backend: worker processes on a store in ``multiprocessing.shared_memory``.

Threads share one interpreter, so past two workers the Python work of each update holds the
GIL. Here every worker is a process with its own JAX runtime; the shared parameters, the shared
RMSProp statistics, the target parameters, the probe and the integer counters live in
shared-memory segments that every worker maps as NumPy arrays. Reads and in-place writes are
exactly those of the thread backend (``a3c_jax.shared.SharedStore``, same code): lock-free in
``hogwild`` mode; the integer counters are advanced under a ``multiprocessing.Lock`` that covers
the integers only; ``locked`` mode takes a second process lock around the whole update.

Lifecycle (``ProcessLaunch``, polled by ``a3c_jax.supervisor`` like every backend): processes
are started with the ``spawn`` method (JAX is not fork-safe), build the same ``AsyncWorker``
from the resolved config, compile, report ready, and start together. They run the one worker
loop and stream their update records to the parent through a queue. A worker that raises
sends its traceback and the run stops with it; a worker that dies (e.g. SIGKILL) is noticed
from its exit code and the run stops with a clear message. Ctrl-C stops every worker.
Shared-memory segments are unlinked in every case (``close``), and their names start with
``a3cjax_`` so leftovers are easy to spot.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_lib
import secrets
import signal
import time
import traceback
from multiprocessing import shared_memory
from typing import Callable

import numpy as np

from a3c_jax.config import Config
from a3c_jax.records import UpdateRecord
from a3c_jax.shared import PROBE_SIZE, SharedStore, StoreMemory
from a3c_jax.worker import AsyncWorker, WorkerError

SHM_PREFIX = "a3cjax_"
_RECORD_BATCH = 256
_FLUSH_S = 0.25


def _layout(size: int, with_rms: bool, with_target: bool) -> dict[str, tuple[tuple, str]]:
    lay = {"params": ((size,), "float32"), "probe": ((PROBE_SIZE,), "float64"),
           "counters": ((3,), "int64")}
    if with_rms:
        lay["rms"] = ((size,), "float32")
    if with_target:
        lay["target"] = ((size,), "float32")
    return lay


class SharedMemoryStore:
    """Owns the segments (parent side); ``spec`` lets a worker process attach to them."""

    def __init__(self, params: np.ndarray, with_rms: bool, with_target: bool, ctx):
        # a3cjax_<owner pid>_<token>_<buffer>: leftovers are traceable to their owner
        self.tag = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        self.layout = _layout(params.shape[0], with_rms, with_target)
        self.segments: dict[str, shared_memory.SharedMemory] = {}
        try:
            for name, (shape, dtype) in self.layout.items():
                nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
                self.segments[name] = shared_memory.SharedMemory(
                    name=f"{self.tag}_{name}", create=True, size=nbytes)
            self.counter_lock = ctx.Lock()
            self.rw_lock = ctx.Lock()
            self.memory = self._memory(self.segments, self.counter_lock, self.rw_lock,
                                       self.layout)
            self.memory.params[:] = params
            self.memory.probe[:] = 0
            self.memory.counters[:] = 0
            if self.memory.rms is not None:
                self.memory.rms[:] = 0
            if self.memory.target is not None:
                self.memory.target[:] = params
        except BaseException:
            self.unlink()
            raise

    @staticmethod
    def _memory(segments, counter_lock, rw_lock, layout) -> StoreMemory:
        arr = {name: np.ndarray(shape, dtype, buffer=segments[name].buf)
               for name, (shape, dtype) in layout.items()}
        return StoreMemory(params=arr["params"], rms=arr.get("rms"), target=arr.get("target"),
                           probe=arr["probe"], counters=arr["counters"],
                           counter_lock=counter_lock, rw_lock=rw_lock)

    def spec(self) -> dict:
        return {"tag": self.tag, "layout": self.layout, "counter_lock": self.counter_lock,
                "rw_lock": self.rw_lock}

    def unlink(self) -> None:
        for seg in self.segments.values():
            try:
                seg.close()
            except BufferError:
                pass  # a NumPy view still exists in this process; unlink anyway
            try:
                seg.unlink()
            except FileNotFoundError:
                pass
        self.segments = {}


def attach(spec: dict) -> tuple[StoreMemory, list]:
    """Worker side: map the parent's segments (the parent alone unlinks them)."""
    segments = {}
    for name in spec["layout"]:
        # spawned workers share the parent's resource tracker, so this registration is the
        # parent's own; the parent unlinks (and unregisters) every segment
        seg = shared_memory.SharedMemory(name=f"{spec['tag']}_{name}")
        segments[name] = seg
    memory = SharedMemoryStore._memory(segments, spec["counter_lock"], spec["rw_lock"],
                                       spec["layout"])
    return memory, list(segments.values())


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
                 stop, go, start_time) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates Ctrl-C
    segs: list = []
    records = None
    try:
        runner = AsyncWorker(Config.from_dict(config_dict), loss_fn)  # resolved by the parent
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


class WorkerProcessError(WorkerError):
    """A worker process raised or died."""


class ProcessLaunch:
    """One seed's W worker processes (the backend interface: poll, T, stop, close);
    ``on_start`` receives the processes once all have started training (tests use it)."""

    def __init__(self, worker: AsyncWorker, seed: int, per_worker: list[list], loss_fn=None,
                 on_start: Callable[[list], None] | None = None,
                 ready_timeout_s: float = 300.0):
        c = worker.config
        self.W, self.per_worker, self.on_start = c.workers, per_worker, on_start
        ctx = mp.get_context("spawn")
        self.shm = SharedMemoryStore(worker.init_flat_params(seed), worker.spec.uses_shared_stats,
                                     worker.with_target, ctx)
        self.store = SharedStore(self.shm.memory.params, worker.spec, c.store_mode,
                                 with_target=worker.with_target, memory=self.shm.memory)
        self.q = ctx.Queue()
        self._stop, self.go = ctx.Event(), ctx.Event()
        self.start_time = ctx.Value("d", 0.0)
        self.procs: list = []
        self._final: tuple | None = None
        self.ready: set[int] = set()
        self.finished: set[int] = set()
        self.started = False
        self.deadline = time.monotonic() + ready_timeout_s
        self.ready_timeout_s = ready_timeout_s
        env = dict(os.environ)
        try:
            _child_env()
            self.procs = [ctx.Process(target=_worker_main, name=f"a3c-proc-{w}", daemon=True,
                                      args=(w, seed, c.to_dict(), loss_fn, self.shm.spec(),
                                            self.q, self._stop, self.go, self.start_time))
                          for w in range(c.workers)]
            for p in self.procs:
                p.start()
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

    @property
    def T(self) -> int:
        return self.store.T

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> tuple:
        """Stop and reap every worker, gather the last records, release the segments;
        (final flat params, lost-update accounting, T). Safe to call again."""
        if self._final is not None:
            return self._final
        self._stop.set()
        self.go.set()
        started = [p for p in self.procs if p.pid is not None]
        for p in started:
            p.join(timeout=10)
        for p in started:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        self._drain()
        self._final = self.store.params.copy(), self.store.lost_updates(), self.store.T
        del self.store
        self.shm.unlink()
        return self._final

    def _drain(self) -> None:
        while True:
            try:
                kind, w, payload = self.q.get(timeout=0.2)
            except (queue_lib.Empty, EOFError, OSError):
                return
            if kind == "records":
                self.per_worker[w].extend(UpdateRecord(*r) for r in payload)


def _child_env() -> None:
    """Environment the spawned workers inherit: one compute thread each, no GPU grab."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
