"""The shared store: the one mutable object of the asynchronous methods (Hogwild!).

It holds, as flat float32 NumPy buffers, the shared parameters theta, the shared RMSProp
statistics g, and the target parameters theta^- (value-based methods); and, as integers, the
global step counter T and a version counter (number of updates written).

What is atomic and what may race
--------------------------------
* ``read()`` copies the parameter buffer (``ndarray.copy``). In ``hogwild`` mode the copy runs
  without a lock, so it may observe a write in progress: some elements from before an update
  and some from after (a torn read, as in Hogwild!). The copy is a real copy: later writes never
  change a snapshot.
* ``apply()`` in ``hogwild`` mode computes the optimiser step from the gradient and the shared
  values *as they are at write time* and updates the buffers in place, elementwise, in one
  pass compiled with numba that does not hold the GIL (``a3c_jax.core.inplace``), with no lock. Two
  workers' writes therefore run in parallel and may interleave at element level: an element's
  read-modify-write may be overwritten by another worker's (the element-level races Hogwild!
  tolerates). No update is ever thrown away wholesale, because nothing assigns parameters
  computed from an old snapshot.
* Integer counters (T, version) are advanced under a tiny lock that covers the integer update
  only, never the buffers; they are exact.
* ``locked`` mode takes one lock around the whole read and the whole read-modify-write: the
  exact control for experiments and tests.
* ``merge_stats()`` merges a worker's batch of observation statistics into a slice of theta
  that no optimiser step changes (running mean/var/count, whose gradient is zero), with the
  values *as they are at write time*, under the small counter lock (a few floats). Merges are
  exact: no batch is ever dropped, so ``count`` is exactly the number of observations seen.
  ``protect()`` marks that slice so that ``apply`` never writes it (an in-place step of zero
  would otherwise write back a value read before a concurrent merge).
* ``overwrite`` mode is the naive idiom, kept only to measure it: the new parameters are
  computed from the worker's snapshot and assigned over the shared buffer (as
  ``store.params = new`` would), discarding every update written since the snapshot. The
  assignment and the read each take the lock, so each behaves like that atomic reference swap.

Measurements
------------
* staleness of an update = versions written between the worker's read and its write;
* the probe (``probe``, float64, ``PROBE_SIZE`` elements) is advanced by the same write as the
  parameters: in the same kernel pass, element j right after parameter ``j * stride``
  (hogwild, locked), or as part of the same (parameters, probe) pair that is read and assigned
  together (overwrite). ``lost_updates`` reports ``version - probe`` per element:
  - overwrite: every element is the exact number of updates lost wholesale (an assignment from
    a snapshot carries that snapshot's probe, so an overwritten update is missing from both);
  - hogwild: element j counts the increments lost to element-level races at that point of the
    parameter sweep; its mean over elements estimates the fraction of a parameter's increments
    lost (not the loss of any particular parameter); no update is ever lost wholesale;
  - locked: 0 by construction.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any, NamedTuple

import numpy as np

from a3c_jax.config.groups import StoreMode
from a3c_jax.core import normalization, optim
from a3c_jax.core.optim import OptSpec

PROBE_SIZE = 4096


class Snapshot(NamedTuple):
    params: np.ndarray      # private copy of theta
    version: int            # store version when the copy began
    probe: np.ndarray | None  # copy of the probe (overwrite mode only)


class WriteRecord(NamedTuple):
    version_read: int
    version_written: int    # the version this write created (1-based)
    staleness: int          # versions written by others between read and write


@dataclasses.dataclass
class LocalOptState:
    """Per-worker optimiser statistics (rmsprop_local: g; sgd: momentum buffer)."""

    buf: np.ndarray | None


class SharedStore:
    """Shared parameters, optimiser statistics, target parameters and counters."""

    def __init__(self, params: np.ndarray, opt: OptSpec, mode: StoreMode = "hogwild",
                 with_target: bool = False, memory: "StoreMemory | None" = None):
        if mode not in ("hogwild", "locked", "overwrite"):
            raise ValueError(f"store_mode must be hogwild, locked or overwrite, got {mode!r}")
        params = np.asarray(params, np.float32)
        if params.ndim != 1:
            raise ValueError("the store holds a flat parameter vector")
        self.mode = mode
        self.opt = opt
        if memory is None:
            memory = LocalMemory.create(params.shape[0], opt.uses_shared_stats, with_target)
            memory.params[:] = params
            if memory.target is not None:
                memory.target[:] = params
        self.memory = memory
        self.params = memory.params
        self.rms = memory.rms
        self.target = memory.target
        self.probe = memory.probe
        self._counters = memory.counters  # int64 [T, version, target_updates]
        self._counter_lock = memory.counter_lock
        self._rw_lock = memory.rw_lock
        self.protected: tuple[int, int] | None = None

    # --- counters (exact) ------------------------------------------------------------------
    @property
    def T(self) -> int:
        return int(self._counters[0])

    @property
    def version(self) -> int:
        return int(self._counters[1])

    @property
    def target_updates(self) -> int:
        return int(self._counters[2])

    def claim_steps(self, n: int, budget: int, target_interval: int = 0
                    ) -> tuple[int, int] | None:
        """Reserve ``n`` env steps of the global budget before acting.

        Returns (T before, T after), or None when the budget is spent. Because a claim needs
        T < budget, T never exceeds the budget by more than one segment. With
        ``target_interval`` > 0, copies theta^- <- theta once for each multiple of it in
        (T before, T after]: claims are disjoint intervals of T (the counter is exact), so each
        boundary belongs to exactly one claim — one copy per boundary under any interleaving.
        """
        with self._counter_lock:
            before = int(self._counters[0])
            if before >= budget:
                return None
            self._counters[0] = before + n
        after = before + n
        if target_interval > 0:
            for _ in range(after // target_interval - before // target_interval):
                self.update_target()
        return before, after

    # --- parameters ------------------------------------------------------------------------
    def read(self) -> Snapshot:
        """A private copy of theta: without waiting (hogwild), under the lock (locked), or
        together with the probe as one consistent pair (overwrite; see ``apply``)."""
        if self.mode == "hogwild":
            version = self.version
            return Snapshot(self.params.copy(), version, None)
        with self._rw_lock:
            probe = self.probe.copy() if self.mode == "overwrite" else None
            return Snapshot(self.params.copy(), self.version, probe)

    def new_local_state(self) -> LocalOptState:
        if not self.opt.uses_shared_stats:   # rmsprop_local, sgd, sgd_paper
            return LocalOptState(np.zeros_like(self.params))
        return LocalOptState(None)

    def apply(self, grad: np.ndarray, snap: Snapshot, local: LocalOptState,
              t: int | None = None) -> WriteRecord:
        """Apply one optimiser step for gradient ``grad`` (computed at ``snap``)."""
        lr = self.opt.lr_at(self.T if t is None else t)
        if self.mode == "locked":
            with self._rw_lock:
                self._step_on(self.params, grad, lr, local, self.probe)
                written = self._bump_version()
        elif self.mode == "hogwild":
            self._step_on(self.params, grad, lr, local, self.probe)
            written = self._bump_version()
        else:  # overwrite: the idiom that loses updates
            new, probe = snap.params.copy(), snap.probe.copy()
            self._step_on(new, grad, lr, local, probe)
            with self._rw_lock:   # replace theta and the probe as one pair
                self.params[:] = new
                self.probe[:] = probe
                written = self._bump_version()
        return WriteRecord(snap.version, written, written - 1 - snap.version)

    def protect(self, start: int, stop: int) -> None:
        """Exclude theta[start:stop] (statistics with zero gradient) from optimiser writes."""
        if not 0 <= start < stop <= self.params.shape[0]:
            raise ValueError(f"protect: slice [{start}, {stop}) outside the parameters")
        self.protected = (start, stop)

    def merge_stats(self, start: int, batch: np.ndarray) -> None:
        """theta[start:stop] <- merge(theta[start:stop], batch) for observation statistics in
        their flat layout (``normalization.merge_flat``), against the current shared values."""
        batch = np.asarray(batch, np.float32)
        stop = start + batch.shape[0]
        if start < 0 or stop > self.params.shape[0]:
            raise ValueError(f"merge_stats: slice [{start}, {stop}) outside the parameters")
        with self._counter_lock:
            self.params[start:stop] = normalization.merge_flat(self.params[start:stop], batch)

    def _bump_version(self) -> int:
        with self._counter_lock:
            self._counters[1] += 1
            return int(self._counters[1])

    def _step_on(self, theta: np.ndarray, d: np.ndarray, lr, local: LocalOptState,
                 probe: np.ndarray) -> None:
        buf = self.rms if self.opt.uses_shared_stats else local.buf
        optim.apply_in_place(self.opt, theta, d, lr, buf, probe, self.protected or (0, 0))

    # --- target parameters (value-based methods) -------------------------------------------
    def update_target(self) -> None:
        """theta^- <- theta (an unlocked copy in hogwild mode, like every other read)."""
        if self.target is None:
            raise RuntimeError("store was built without target parameters")
        if self.mode == "locked":
            with self._rw_lock:
                self.target[:] = self.params
        else:
            self.target[:] = self.params
        with self._counter_lock:
            self._counters[2] += 1

    def read_target(self) -> np.ndarray:
        if self.target is None:
            raise RuntimeError("store was built without target parameters")
        return self.target.copy()

    # --- accounting ------------------------------------------------------------------------
    def lost_updates(self) -> dict:
        """Increments lost per probe element: wholesale losses show in every element."""
        version = self.version
        deficit = version - self.probe
        return {"updates": version, "lost_max": float(deficit.max()),
                "lost_min": float(deficit.min()), "lost_mean": float(deficit.mean()),
                "lost_fraction": float(deficit.mean() / max(version, 1))}


@dataclasses.dataclass
class StoreMemory:
    """The buffers and locks behind a store. ``LocalMemory`` lives in this process (thread
    backend); ``a3c_jax.drivers.asynchronous.backends.processes.SharedMemoryStore`` maps the same layout into
    ``multiprocessing.shared_memory`` for worker processes."""

    params: np.ndarray
    rms: np.ndarray | None
    target: np.ndarray | None
    probe: np.ndarray
    counters: np.ndarray
    counter_lock: Any
    rw_lock: Any


class LocalMemory(StoreMemory):
    @classmethod
    def create(cls, size: int, with_rms: bool, with_target: bool) -> "LocalMemory":
        return cls(params=np.zeros(size, np.float32),
                   rms=np.zeros(size, np.float32) if with_rms else None,
                   target=np.zeros(size, np.float32) if with_target else None,
                   probe=np.zeros(PROBE_SIZE, np.float64), counters=np.zeros(3, np.int64),
                   counter_lock=threading.Lock(), rw_lock=threading.Lock())
