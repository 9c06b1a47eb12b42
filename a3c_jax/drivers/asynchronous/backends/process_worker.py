"""The worker side of the process backend: the spawned process's main, and its records.

A worker process streams its update records to the parent through a queue, in batches
(``_QueueRecords``). A batch still in the process when it is killed (SIGKILL, the
out-of-memory killer) would be lost with it, although its updates reached the store; so every
record is also written, as it is made, into the worker's row of a shared-memory ring
(``RecordRing``, parent-owned like the store's segments). The parent counts what the queue
delivered and, when a worker dies, takes the rest from the ring: every update written to the
store is recorded once (up to the few instructions between the store's version bump and the
ring write).
"""

from __future__ import annotations

import os
import signal
import time
import traceback

import numpy as np

from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.store_state import build_worker
from a3c_jax.drivers.asynchronous.worker import Diverged
from a3c_jax.drivers.asynchronous.backends.shared_memory import attach, watch_parent

_RECORD_BATCH = 256
_FLUSH_S = 0.25
RING_SIZE = 4096
"""Records each worker's ring holds: far more than one batch in flight (256, or 0.25 s)."""
FIELDS = len(UpdateRecord._fields)
_INT_FIELDS = [i for i, f in enumerate(UpdateRecord._fields)
               if f in ("worker", "update", "env_steps", "version_read", "version_written",
                        "staleness", "nonfinite")]


def ring_layout(workers: int) -> dict[str, tuple[tuple, str]]:
    """The ring's buffers, as ``shared_memory`` layouts: records float64 [W, RING_SIZE,
    FIELDS] and per-worker counts int64 [W] (records written by its current process)."""
    return {"ring": ((workers, RING_SIZE, FIELDS), "float64"), "ring_n": ((workers,), "int64")}


class RecordRing:
    """Views of the ring's segments, on either side (``segments`` maps buffer name to
    segment)."""

    def __init__(self, segments: dict, workers: int):
        lay = ring_layout(workers)
        self.rows, self.count = (np.ndarray(shape, dtype, buffer=segments[name].buf)
                                 for name, (shape, dtype) in lay.items())

    def write(self, worker: int, rec: tuple) -> None:
        """The slot first, then the count: the parent never reads a slot before its record."""
        n = int(self.count[worker])
        self.rows[worker, n % RING_SIZE] = rec
        self.count[worker] = n + 1

    def missed(self, worker: int, received: int) -> tuple[list[UpdateRecord], int]:
        """The records of ``worker``'s process after the first ``received`` (what the queue
        delivered), and how many of them the ring no longer holds."""
        n = int(self.count[worker])
        start = max(received, n - RING_SIZE)
        out = []
        for i in range(start, n):
            row = [float(x) for x in self.rows[worker, i % RING_SIZE]]
            for j in _INT_FIELDS:
                row[j] = int(row[j])
            out.append(UpdateRecord(*row))
        return out, start - received

    def reset(self, worker: int) -> None:
        """Before a new process of ``worker`` starts."""
        self.count[worker] = 0


class _QueueRecords(list):
    """A list the worker loop appends to; records go to the parent in batches, and into the
    ring at once."""

    def __init__(self, q, worker: int, ring: RecordRing):
        super().__init__()
        self.q, self.worker, self.ring = q, worker, ring
        self.buf, self.last = [], time.monotonic()

    def append(self, rec) -> None:  # noqa: D401 - list API
        rec = tuple(rec)
        self.ring.write(self.worker, rec)
        self.buf.append(rec)
        if len(self.buf) >= _RECORD_BATCH or time.monotonic() - self.last > _FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.q.put(("records", self.worker, self.buf))
            self.buf = []
        self.last = time.monotonic()


class SharedFlag:
    """A flag shared by the parent and its worker processes, with the part of
    ``threading.Event`` the worker loop uses (``set``, ``is_set``, ``wait``), held in one
    shared byte without a lock. A ``multiprocessing.Event`` takes a lock on every call, and a
    worker killed (SIGKILL, the OOM killer) while it held that lock left it held: the parent's
    ``set`` then waited forever (seen once in ``make test``: a worker killed as it woke from
    ``go.wait()``). ``wait`` polls: it only ever waits for the start of training."""

    def __init__(self, ctx):
        self._byte = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._byte.value = 1

    def is_set(self) -> bool:
        return self._byte.value != 0

    def wait(self, poll_s: float = 0.002) -> None:
        while not self.is_set():
            time.sleep(poll_s)


def worker_main(worker: int, seed: int, config_dict: dict, loss_fn, spec: dict, q,
                stop, go, start_time, parent_pid: int, points, cpus=None,
                restart: tuple[int, int] | None = None) -> None:
    """A worker process: build and compile, report ready, wait for ``go``, run the loop.
    ``restart`` (count, T) for a process that replaces a dead one (``store_state``)."""
    if cpus is not None:   # before JAX opens its backend, which sizes pools by the mask
        os.sched_setaffinity(0, cpus)
    watch_parent(parent_pid, spec)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)  # the parent coordinates Ctrl-C and SIGTERM
    segs: list = []
    records = None
    try:
        _fail_for_tests(worker)
        runner = build_worker(config_dict, loss_fn, points, restart)  # resolved by the parent
        runner.compile()
        memory, segs = attach(spec)
        ring = RecordRing(dict(zip(spec["layout"], segs)), runner.config.workers)
        store = SharedStore(memory.params, runner.spec, runner.config.store_mode,
                            with_target=memory.target is not None, memory=memory)
        q.put(("ready", worker, None))
        go.wait()
        t0 = start_time.value
        records = _QueueRecords(q, worker, ring)
        runner.loop(worker, seed, store, lambda: time.time() - t0, records)(stop)
        records.flush()
        q.put(("done", worker, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        if records is not None:
            records.flush()  # what the failing worker gathered still reaches the parent
        q.put(("error", worker, (f"{type(exc).__name__}: {exc}", traceback.format_exc(),
                                 exc if isinstance(exc, Diverged) else None)))
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


FAIL_ENV = "A3C_JAX_TEST_FAIL_WORKER"
"""Tests: a worker whose id this names (``0``, or ``all``) raises as it starts, every time."""


def _fail_for_tests(worker: int) -> None:
    what = os.environ.get(FAIL_ENV, "")
    if what and (what == "all" or what == str(worker)):
        raise RuntimeError(f"{FAIL_ENV}={what}: worker {worker} refuses to start")

