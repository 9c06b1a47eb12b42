"""Process backend: worker processes on a store in ``multiprocessing.shared_memory``.

Threads share one interpreter, so past two workers the Python work of each update holds the
GIL. Here every worker is a process with its own JAX runtime; the shared parameters, the shared
RMSProp statistics, the target parameters, the probe and the integer counters live in
shared-memory segments that every worker maps as NumPy arrays. Reads and in-place writes are
exactly those of the thread backend (``a3c_jax.shared.SharedStore``, same code): lock-free in
``hogwild`` mode; the integer counters are advanced under a ``multiprocessing.Lock`` that covers
the integers only; ``locked`` mode takes a second process lock around the whole update.

Lifecycle: processes are started with the ``spawn`` method (JAX is not fork-safe), compile,
report ready, and start together. They stream their update records to the parent through a
queue. The parent follows the global counter for progress; a worker that raises sends its
traceback and the run stops with it; a worker that dies (e.g. SIGKILL) is noticed from its exit
code and the run stops with a clear message. Ctrl-C stops every worker. Shared-memory segments
are unlinked in every case (``finally``), and their names start with ``a3cjax_`` so leftovers are
easy to spot.
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

from a3c_jax.shared import PROBE_SIZE, SharedStore, StoreMemory

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
    try:
        from a3c_jax.async_driver import build_async_algorithm
        from a3c_jax.config import Config
        from a3c_jax.shared import OptSpec

        config = Config.from_dict(config_dict)
        algo = build_async_algorithm(config, loss_fn)
        algo.compile()
        memory, segs = attach(spec)
        store = SharedStore(memory.params, OptSpec.from_config(config), config.store_mode,
                            with_target=memory.target is not None, memory=memory)
        q.put(("ready", worker, None))
        go.wait()
        t0 = start_time.value
        records = _QueueRecords(q, worker)
        loop = algo.worker_loop(worker, seed, store, lambda: time.time() - t0, records)
        loop(stop)
        records.flush()
        q.put(("done", worker, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(("error", worker, (f"{type(exc).__name__}: {exc}", traceback.format_exc())))
    finally:
        for seg in segs:
            try:
                seg.close()
            except BufferError:
                pass


class WorkerProcessError(RuntimeError):
    """A worker process raised or died."""

    def __init__(self, worker: int, message: str, tb: str = ""):
        super().__init__(f"worker {worker} failed: {message}"
                         + (f"\n--- worker {worker} traceback ---\n{tb}" if tb else ""))
        self.worker = worker
        self.traceback = tb


def train_one_seed_processes(algo, seed: int, on_progress: Callable[[int], None] | None = None,
                             loss_fn=None, on_start: Callable[[list], None] | None = None,
                             ready_timeout_s: float = 300.0):
    """Like ``async_driver.train_one_seed`` with one process per worker.

    Returns (final flat params copy, store accounting, records, interruption or None).
    ``on_start`` receives the worker processes once all have started training (tests use it).
    """
    from a3c_jax.async_driver import UpdateRecord, make_monitor

    c = algo.config
    ctx = mp.get_context("spawn")
    shm = SharedMemoryStore(algo.init_flat_params(seed), c.optimizer == "rmsprop",
                            algo.with_target, ctx)
    store = SharedStore(shm.memory.params, _opt(c), c.store_mode,
                        with_target=algo.with_target, memory=shm.memory)
    q = ctx.Queue()
    stop, go = ctx.Event(), ctx.Event()
    start_time = ctx.Value("d", 0.0)
    procs: list = []
    per_worker: list[list] = [[] for _ in range(c.workers)]
    stopped: BaseException | None = None
    finished: set[int] = set()
    monitor = make_monitor(c, per_worker)
    last_t = 0
    env = dict(os.environ)
    try:
        _child_env()
        procs = [ctx.Process(target=_worker_main, name=f"a3c-proc-{w}", daemon=True,
                             args=(w, seed, c.to_dict(), loss_fn, shm.spec(), q, stop, go,
                                   start_time)) for w in range(c.workers)]
        for p in procs:
            p.start()
        os.environ.clear()
        os.environ.update(env)
        ready: set[int] = set()
        deadline = time.monotonic() + ready_timeout_s
        started = False
        while True:
            try:
                kind, w, payload = q.get(timeout=0.05)
            except queue_lib.Empty:
                kind = None
            if kind == "ready":
                ready.add(w)
            elif kind == "records":
                per_worker[w].extend(UpdateRecord(*r) for r in payload)
            elif kind == "done":
                finished.add(w)
            elif kind == "error":
                stopped = WorkerProcessError(w, payload[0], payload[1])
                break
            if not started and len(ready) == c.workers:
                start_time.value = time.time()
                go.set()
                started = True
                if on_start is not None:
                    on_start(procs)
            if not started and time.monotonic() > deadline:
                stopped = WorkerProcessError(-1, f"workers not ready after {ready_timeout_s}s")
                break
            dead = [(i, p.exitcode) for i, p in enumerate(procs)
                    if p.exitcode is not None and i not in finished]
            if dead and kind is None:
                i, code = dead[0]
                if code != 0:
                    how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                           else f"exit code {code}")
                    stopped = WorkerProcessError(i, f"worker process died ({how})")
                    break
            if len(finished) == c.workers:
                break
            if on_progress is not None:
                t = min(store.T, c.total_steps)
                on_progress(t - last_t)
                last_t = t
            if monitor is not None and monitor.reached():
                stop.set()
    except KeyboardInterrupt as exc:
        stopped = exc
    finally:
        stop.set()
        go.set()
        procs = [p for p in procs if p.pid is not None]  # those that started
        for p in procs:
            p.join(timeout=10)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        _drain(q, per_worker)
        params = store.params.copy()
        lost = store.lost_updates()
        T = store.T
        del store
        shm.unlink()
    records = [UpdateRecord(*r) for rs in per_worker for r in rs]
    return params, {"lost": lost, "T": T}, records, stopped


def _drain(q, per_worker) -> None:
    from a3c_jax.async_driver import UpdateRecord

    while True:
        try:
            kind, w, payload = q.get(timeout=0.2)
        except (queue_lib.Empty, EOFError, OSError):
            return
        if kind == "records":
            per_worker[w].extend(UpdateRecord(*r) for r in payload)


def _opt(config):
    from a3c_jax.shared import OptSpec

    return OptSpec.from_config(config)


def _child_env() -> None:
    """Environment the spawned workers inherit: one compute thread each, no GPU grab."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
