"""Shared-memory segments of the process backend's store, and the worker side of them.

``SharedMemoryStore`` (parent side) creates one segment per buffer of the store's layout
(parameters, probe, counters, and the shared RMSProp statistics and target parameters when
the method has them) and owns them: it alone unlinks them when a run ends. Segment names are
``a3cjax_<owner pid>_<token>_<buffer>``, so leftovers are traceable to their owner. A worker
maps them with ``attach``.

When the parent dies without cleaning up (SIGKILL, out of memory), two things make sure that
no worker is left behind and no segment stays in ``/dev/shm``:

* ``Reaper``: a small standard-library process started by the parent once its workers exist.
  It waits on a pipe only the parent holds; when the pipe closes without the parent's "done"
  (the parent died), it kills the workers and unlinks the segments, within a fraction of a
  second, in any phase — also while the workers are still importing JAX, before any code of
  theirs runs;
* ``watch_parent``: each worker's own watchdog thread, which notices within ``WATCHDOG_S``
  that its parent is gone, unlinks the segments and exits (the reaper's backstop).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from multiprocessing import shared_memory

import numpy as np

from a3c_jax.drivers.asynchronous.store import PROBE_SIZE, StoreMemory

SHM_PREFIX = "a3cjax_"
WATCHDOG_S = 0.25
"""How often a worker checks that its parent is alive."""
ORPHAN_EXIT = 3
"""Exit status of a worker whose parent died."""


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

    def __init__(self, params: np.ndarray, with_rms: bool, with_target: bool, ctx,
                 extra: dict[str, tuple[tuple, str]] | None = None):
        # a3cjax_<owner pid>_<token>_<buffer>: leftovers are traceable to their owner
        self.tag = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        # ``extra``: more zeroed buffers beside the store's (the process backend's record ring)
        self.layout = {**_layout(params.shape[0], with_rms, with_target), **(extra or {})}
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


def release(spec: dict) -> None:
    """Unlink every segment of ``spec`` that still exists (a worker whose parent died)."""
    for name in spec["layout"]:
        try:
            seg = shared_memory.SharedMemory(name=f"{spec['tag']}_{name}")
        except FileNotFoundError:
            continue
        try:
            seg.unlink()
        except FileNotFoundError:
            pass
        seg.close()


def watch_parent(parent_pid: int, spec: dict) -> None:
    """Exit this worker process soon after its parent dies, releasing the segments."""

    def watch():
        while True:
            time.sleep(WATCHDOG_S)
            if os.getppid() != parent_pid:
                try:
                    release(spec)
                finally:
                    os._exit(ORPHAN_EXIT)

    threading.Thread(target=watch, name="a3c-parent-watchdog", daemon=True).start()


def attach(spec: dict) -> tuple[StoreMemory, list]:
    """Worker side: map the parent's segments (the parent alone unlinks them); the segments
    in ``spec["layout"]``'s order."""
    segments = {}
    for name in spec["layout"]:
        # spawned workers share the parent's resource tracker, so this registration is the
        # parent's own; the parent unlinks (and unregisters) every segment
        seg = shared_memory.SharedMemory(name=f"{spec['tag']}_{name}")
        segments[name] = seg
    memory = SharedMemoryStore._memory(segments, spec["counter_lock"], spec["rw_lock"],
                                       spec["layout"])
    return memory, list(segments.values())


_REAPER = r"""
import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)     # the parent's signals are not for us
pids = [int(p) for p in sys.argv[1].split(",") if p]
names = [n for n in sys.argv[2].split(",") if n]
if sys.stdin.buffer.read().endswith(b"done"):
    sys.exit(0)                           # the parent cleaned up itself
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
try:
    from _posixshmem import shm_unlink
except ImportError:
    shm_unlink = lambda name: os.unlink("/dev/shm" + name)
for name in names:
    try:
        shm_unlink("/" + name)
    except OSError:
        pass
"""


class Reaper:
    """Kills ``pids`` and unlinks ``segments`` if this process dies before ``close``."""

    def __init__(self, pids: list[int], segments: list[str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _REAPER, ",".join(map(str, pids)), ",".join(segments)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        """The parent cleaned up: let the reaper go without touching anything."""
        if self.proc.stdin is None or self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.write(b"done")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
