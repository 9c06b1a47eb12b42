"""The Ray backend's store: the parameter server (an actor around a ``SharedStore``) and the
client a worker actor's loop sees as its store.

Ray is imported only when a call is made (the optional ``ray`` extra).
"""

from __future__ import annotations

import numpy as np

from a3c_jax.config.schema import Resolved
from a3c_jax.core.optim import OptSpec
from a3c_jax.drivers.asynchronous.store import SharedStore, Snapshot
from a3c_jax.drivers.asynchronous.store_state import restore_store, store_state


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover - exercised where ray is absent
        raise ImportError("the ray backend needs Ray: pip install 'a3c_jax[ray]'") from err
    return ray


class ParameterServer:
    """The shared store behind an actor; every method is one remote call."""

    def __init__(self, params: np.ndarray, config_dict: dict, with_target: bool):
        self.config = Resolved.from_dict(config_dict)
        self.store = SharedStore(params, OptSpec.from_config(self.config),
                                 self.config.store_mode, with_target=with_target)
        self.local: dict[int, object] = {}
        self.applied: dict[int, int] = {}   # updates written, per worker (restart accounting)
        self.stopped = False

    def claim_and_read(self, n: int, budget: int, interval: int = 0):
        if self.stopped:
            return None
        claim = self.store.claim_steps(n, budget, interval)
        if claim is None:
            return None
        return claim, self.store.read()

    def apply(self, worker: int, grad: np.ndarray, snap, t: int | None):
        if worker not in self.local:
            self.local[worker] = self.store.new_local_state()
        self.applied[worker] = self.applied.get(worker, 0) + 1
        return self.store.apply(grad, snap, self.local[worker], t)

    def protect(self, start: int, stop: int) -> None:
        self.store.protect(start, stop)

    def merge_stats(self, start: int, batch: np.ndarray) -> None:
        self.store.merge_stats(start, batch)

    def apply_and_claim(self, worker: int, grad: np.ndarray, snap, t: int | None, n: int,
                        budget: int, interval: int = 0):
        """One round trip per update: write this update, then claim and read the next."""
        return self.apply(worker, grad, snap, t), self.claim_and_read(n, budget, interval)

    def claim_after(self, n: int, budget: int, interval: int = 0):
        """``claim_and_read`` shaped as ``apply_and_claim``'s answer, with no write to report."""
        return None, self.claim_and_read(n, budget, interval)

    def update_target(self) -> None:
        self.store.update_target()

    def read_target(self) -> np.ndarray:
        return self.store.read_target()

    def stop(self) -> None:
        self.stopped = True

    def stop_requested(self) -> bool:
        return self.stopped

    def status(self) -> tuple[int, int]:
        return self.store.T, self.store.version

    def final(self):
        return self.store.params.copy(), self.store.lost_updates(), self.store.T

    def written(self, worker: int) -> int:
        """The number of updates ``worker`` has written (over all its actors)."""
        return self.applied.get(worker, 0)

    def node(self) -> str:
        return _ray().get_runtime_context().get_node_id()

    def state(self) -> dict:
        return store_state(self.store)

    def restore(self, state: dict) -> None:
        restore_store(self.store, state)


class StoreClient:
    """What the worker loop sees as its store; each method is a call to the server.

    Pipelined: while a segment runs, one call is in flight that writes the previous
    segment's gradient and claims and reads the segment after this one. The round trip is
    hidden behind the compute, and each gradient is taken at parameters that lack this worker's
    own last write (staleness about one higher than without the overlap, and recorded).
    ``apply`` answers None, and the write's result arrives through ``completed()`` one update later;
    ``flush()`` writes the last gradient when the loop ends. Only the snapshot's version
    goes back to the server, except in ``overwrite`` mode, whose write needs the copy itself.
    """

    def __init__(self, server, worker: int, send_params: bool = False):
        self.server, self.worker, self.send_params = server, worker, send_params
        self._pending = None       # the snapshot of the claim just returned
        self._inflight = None      # future: (write result or None, next claim and snapshot)
        self._grad: tuple | None = None   # the last gradient, not yet sent
        self._results: list = []   # write results not yet handed to the loop

    def _take_inflight(self):
        result, got = _ray().get(self._inflight)
        self._inflight = None
        if result is not None:
            self._results.append(result)
        return got

    def claim_steps(self, n: int, budget: int, target_interval: int = 0):
        args = (n, budget, target_interval)
        if self._inflight is None:   # the first claim: nothing to overlap with yet
            got = _ray().get(self.server.claim_and_read.remote(*args))
        else:   # claimed while the last segment ran (its size may differ from n: the loop
            got = self._take_inflight()   # counts what it was given)
        if got is None:
            return None
        claim, self._pending = got
        grad, self._grad = self._grad, None
        self._inflight = (self.server.claim_after.remote(*args) if grad is None else
                          self.server.apply_and_claim.remote(self.worker, *grad, *args))
        return claim

    def read(self):
        snap, self._pending = self._pending, None
        if snap is None:
            raise RuntimeError("read() must follow claim_steps() on the ray store client")
        return snap

    def new_local_state(self):
        return None  # kept by the server, per worker

    def apply(self, grad, snap, local, t=None):
        sent = snap if self.send_params else Snapshot(None, snap.version, None)
        self._grad = (np.asarray(grad), sent, t)
        return None

    def completed(self) -> list:
        done, self._results = self._results, []
        return done

    def flush(self) -> list:
        """Finish the call in flight (its claim goes unused) and write the last gradient."""
        if self._inflight is not None:
            self._take_inflight()
        if self._grad is not None:
            grad, self._grad = self._grad, None
            self._results.append(_ray().get(self.server.apply.remote(self.worker, *grad)))
        return self.completed()

    def protect(self, start: int, stop: int) -> None:
        _ray().get(self.server.protect.remote(start, stop))

    def merge_stats(self, start: int, batch) -> None:
        _ray().get(self.server.merge_stats.remote(start, np.asarray(batch)))

    def update_target(self) -> None:
        _ray().get(self.server.update_target.remote())

    def read_target(self) -> np.ndarray:
        return _ray().get(self.server.read_target.remote())

    @property
    def T(self) -> int:
        return _ray().get(self.server.status.remote())[0]
