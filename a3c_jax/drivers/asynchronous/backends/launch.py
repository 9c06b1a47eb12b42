"""What every backend's launch offers the supervisor: the ``Launch`` protocol.

Building a launch (``threads.ThreadLaunch``, ``processes.ProcessLaunch``,
``ray_actors.RayLaunch``) starts W worker loops for one seed against a store; each worker's
update records are appended to ``per_worker[w]`` (a list the caller owns) as they reach this
process. The supervisor (``a3c_jax.drivers.asynchronous.supervisor``) then polls the launch
until the loops end, may stop it early, snapshots its store for checkpoints, and closes it in
every case (normal end, early stop, Ctrl-C, a failed worker). Nothing else is asked of a
backend: the records, rows and checkpoints above it are the same for all of them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from a3c_jax.drivers.asynchronous.store_state import store_state


class Launch(Protocol):
    """One seed's W running worker loops (see the module docstring)."""

    final_store: dict | None
    """The store's state after ``close`` (``store_state.store_state``'s dict: buffers and
    counters, what a resume restores); None before."""

    def poll(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds, moving the records that arrived into
        ``per_worker``; True while any worker loop still runs, False once all have ended
        (budget spent or stopped). Raises a ``WorkerError`` naming the worker when one
        raised or died."""
        ...

    @property
    def T(self) -> int:
        """The store's global step counter (env steps claimed so far), at least as recent as
        the last ``poll``."""
        ...

    def stop(self) -> None:
        """Ask every worker to leave its loop at its next update (early stop); returns at
        once, the loops end later (``poll`` returns False then)."""
        ...

    def store_state(self) -> dict:
        """A snapshot of the store taken while the workers run, without stopping them (a
        periodic checkpoint; ``store_state.store_state``'s dict)."""
        ...

    def close(self) -> tuple[np.ndarray, dict, int]:
        """Stop and reap every worker, gather their last records into ``per_worker``, set
        ``final_store`` and release what the launch holds (threads, processes and shared
        memory, actors); returns (final flat float32 parameters [P], the store's lost-update
        accounting, T). Safe after a failure and safe to call again."""
        ...


class LocalStoreLaunch(Launch):
    """A launch whose store this process reads directly: the thread backend's, and the
    process backend's shared-memory store mapped here. Its counter, its early stop and its
    snapshots come from the store and one stop event; a subclass sets ``store`` and
    ``_stop`` and writes ``poll`` and ``close``."""

    store: Any
    _stop: Any   # a threading or multiprocessing Event the worker loops watch

    @property
    def T(self) -> int:
        return self.store.T

    def stop(self) -> None:
        self._stop.set()

    def store_state(self) -> dict:
        return store_state(self.store)
