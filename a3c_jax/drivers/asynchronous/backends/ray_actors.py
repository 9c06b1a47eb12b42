"""Ray backend: worker actors around a parameter-server actor, for more than one machine.

* The parameter server is one Ray actor holding a ``SharedStore`` (the same code as the other
  backends). It is a threaded actor (``max_concurrency`` = W + 2), so calls from different
  workers run concurrently in its threads and the store behaves as in the thread backend:
  ``hogwild`` writes are in place without a lock, ``locked`` is the exact control. It also keeps
  the per-worker optimiser state (``rmsprop_local``, ``sgd``) so a write needs only the gradient.
* Each worker is a Ray actor that builds the same ``AsyncWorker`` from the resolved config,
  compiles its jitted step and runs the *same* worker loop as the other backends against
  ``ray_client.StoreClient``, a proxy whose calls are actor calls. It is pipelined: while a
  segment runs, one call in flight writes the previous gradient and claims and reads the next
  segment's parameters (target copies happen in the server, inside the claim), so the round
  trip hides behind the compute and staleness grows by about one (recorded).
* ``RayLaunch`` is the ``launch.Launch`` the supervisor polls
  (``a3c_jax.drivers.asynchronous.supervisor``).
* ``--backend ray`` without ``--ray-address`` starts a local Ray instance; with one it joins
  that cluster (its nodes need this package installed, e.g. through a Ray runtime_env).

Ray is an optional extra (``pip install .[ray]``), imported only here.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from a3c_jax.config.schema import Resolved
from a3c_jax.core.optim import OptSpec
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store_state import (build_worker, restore_store, store_state,
                                                      worker_points)
from a3c_jax.drivers.asynchronous.backends.launch import Launch
from a3c_jax.drivers.asynchronous.backends.ray_store import StoreClient, _ray
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged, WorkerError


class ParameterServer:
    """The shared store behind an actor; every method is one remote call."""

    def __init__(self, params: np.ndarray, config_dict: dict, with_target: bool):
        self.config = Resolved.from_dict(config_dict)
        self.store = SharedStore(params, OptSpec.from_config(self.config),
                                 self.config.store_mode, with_target=with_target)
        self.local: dict[int, object] = {}
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

    def status(self) -> tuple[int, int]:
        return self.store.T, self.store.version

    def final(self):
        return self.store.params.copy(), self.store.lost_updates(), self.store.T

    def state(self) -> dict:
        return store_state(self.store)

    def restore(self, state: dict) -> None:
        restore_store(self.store, state)


class Worker:
    """One actor-learner; ``run`` returns its number of update records."""

    def __init__(self, worker: int, seed: int, config_dict: dict, loss_fn, points=None):
        self.worker, self.seed = worker, seed
        self.runner = build_worker(config_dict, loss_fn, points)  # resolved
        self.runner.compile()

    def ready(self) -> bool:
        return True

    def run(self, server, t0: float) -> int:
        self.records: list = []
        client = StoreClient(server, self.worker,
                             send_params=self.runner.config.store_mode == "overwrite")
        loop = self.runner.loop(self.worker, self.seed, client,
                                lambda: time.time() - t0, self.records)
        loop(threading.Event())
        return len(self.records)

    def drain(self, start: int) -> list[tuple]:
        """Records from index ``start`` on (runs concurrently with ``run``)."""
        records = getattr(self, "records", [])
        return [tuple(r) for r in records[start:len(records)]]


def ensure_ray(address: str = "", num_cpus: int | None = None):
    ray = _ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)
    return ray


def worker_cpus(resources: dict, workers: int) -> float:
    """CPUs each worker actor asks Ray for: one where the cluster has a CPU per worker, else an
    equal share, so that W workers always fit (on a 2-CPU machine, W = 4 oversubscribes the
    cores like 4 threads would, instead of waiting forever for CPUs that do not exist)."""
    cpus = float(resources.get("CPU", 0.0))
    if cpus <= 0:
        raise RuntimeError("the Ray cluster reports no CPUs; workers cannot be placed")
    return min(1.0, cpus / workers)


class RayLaunch(Launch):
    """One seed's W worker actors and the parameter server (``launch.Launch``); ``restore``
    is a ``store_state.store_state`` to start from."""

    def __init__(self, worker: AsyncWorker, seed: int, per_worker: list[list], loss_fn=None,
                 restore: dict | None = None):
        c = worker.config
        self.ray = ray = ensure_ray(c.ray_address)
        self.per_worker, self.total = per_worker, c.total_steps
        self._final: tuple | None = None
        self.final_store: dict | None = None
        server_cls = ray.remote(num_cpus=0, max_concurrency=c.workers + 2)(ParameterServer)
        worker_cls = ray.remote(num_cpus=worker_cpus(ray.cluster_resources(), c.workers),
                                max_concurrency=2)(Worker)
        self.server = server_cls.remote(worker.init_flat_params(seed), c.to_dict(),
                                        worker.with_target)
        if restore is not None:
            ray.get(self.server.restore.remote(restore))
        self.actors = [worker_cls.remote(w, seed, c.to_dict(), loss_fn, worker_points(worker))
                       for w in range(c.workers)]
        self.pending: dict | None = None
        self._T = 0

    def _start(self) -> None:
        ray = self.ray
        ray.get([a.ready.remote() for a in self.actors])
        futures = [a.run.remote(self.server, time.time()) for a in self.actors]
        self.pending = dict(zip(futures, range(len(self.actors))))

    def poll(self, timeout: float) -> bool:
        ray = self.ray
        try:
            if self.pending is None:
                self._start()
            done, _ = ray.wait(list(self.pending), timeout=timeout)
            for f in done:
                self.pending.pop(f)
                ray.get(f)  # raises the worker's error, if any
            got = ray.get([a.drain.remote(len(self.per_worker[w]))
                           for w, a in enumerate(self.actors)])
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            w = next((i for i, a in enumerate(self.actors)
                      if str(a._actor_id.hex()) in str(exc)), -1)
            cause = getattr(exc, "cause", None)   # the worker's own exception, if Ray kept it
            raise WorkerError(w, f"{type(exc).__name__}", str(exc)) from (
                cause if isinstance(cause, Diverged) else exc)
        for w, rs in enumerate(got):
            self.per_worker[w].extend(UpdateRecord(*r) for r in rs)
        self._T = ray.get(self.server.status.remote())[0]
        return bool(self.pending)

    @property
    def T(self) -> int:
        return self._T

    def stop(self) -> None:
        self.ray.get(self.server.stop.remote())

    def store_state(self) -> dict:
        """A snapshot of the server's store (for a periodic checkpoint)."""
        return self.ray.get(self.server.state.remote())

    def close(self, stop_timeout_s: float = 5.0) -> tuple:
        """Stop the server, let the workers finish their update (up to ``stop_timeout_s``),
        take the server's final state and the workers' last records, kill every actor. Safe
        to call again."""
        if self._final is not None:
            return self._final
        ray = self.ray
        try:
            ray.get(self.server.stop.remote())
            if self.pending:
                ray.wait(list(self.pending), num_returns=len(self.pending),
                         timeout=stop_timeout_s)
            self._final = tuple(ray.get(self.server.final.remote()))
            self.final_store = ray.get(self.server.state.remote())
            try:   # records of updates that reached the store after the last poll
                got = ray.get([a.drain.remote(len(self.per_worker[w]))
                               for w, a in enumerate(self.actors)], timeout=stop_timeout_s)
                for w, rs in enumerate(got):
                    self.per_worker[w].extend(UpdateRecord(*r) for r in rs)
            except ray.exceptions.RayError:
                pass   # a failed worker: its error is what the run reports
        finally:
            for a in self.actors:
                ray.kill(a)
            ray.kill(self.server)
        return self._final
