"""Ray backend: worker actors around a parameter-server actor, for more than one machine.

* The parameter server is one Ray actor holding a ``SharedStore`` (the same code as the other
  backends). It is a threaded actor (``max_concurrency`` = W + 2), so calls from different
  workers run concurrently in its threads and the store behaves as in the thread backend:
  ``hogwild`` writes are in place without a lock, ``locked`` is the exact control. It also keeps
  the per-worker optimiser state (``rmsprop_local``, ``sgd``) so a write needs only the gradient.
* Each worker is a Ray actor that builds the algorithm from the config, compiles its jitted
  step and runs the *same* worker loop as the other backends against ``StoreClient``, a proxy
  whose calls are actor calls: one call claims steps and returns a snapshot, one call writes.
* ``--backend ray`` without ``--ray-address`` starts a local Ray instance; with one it joins
  that cluster (its nodes need this package installed, e.g. through a Ray runtime_env).

Ray is an optional extra (``pip install .[ray]``), imported only here.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import numpy as np


def _ray():
    try:
        import ray
    except ImportError as err:  # pragma: no cover - exercised where ray is absent
        raise ImportError("the ray backend needs Ray: pip install 'a3c_jax[ray]'") from err
    return ray


class ParameterServer:
    """The shared store behind an actor; every method is one remote call."""

    def __init__(self, params: np.ndarray, config_dict: dict, with_target: bool):
        from a3c_jax.config import Config
        from a3c_jax.shared import OptSpec, SharedStore

        self.config = Config.from_dict(config_dict)
        self.store = SharedStore(params, OptSpec.from_config(self.config),
                                 self.config.store_mode, with_target=with_target)
        self.local: dict[int, object] = {}
        self.stopped = False

    def claim_and_read(self, n: int, budget: int):
        if self.stopped:
            return None
        claim = self.store.claim_steps(n, budget)
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
                        budget: int):
        """One round trip per update: write this update, then claim and read the next."""
        return self.apply(worker, grad, snap, t), self.claim_and_read(n, budget)

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


class StoreClient:
    """What the worker loop sees as its store; each method is a call to the server."""

    def __init__(self, server, worker: int):
        self.server, self.worker = server, worker
        self._pending = None
        self._next: tuple | None = None   # claim made together with the last write
        self._claim_args: tuple[int, int] | None = None

    def claim_steps(self, n: int, budget: int):
        if self._next is not None and self._claim_args == (n, budget):
            got, self._next = self._next[0], None
        else:
            got = _ray().get(self.server.claim_and_read.remote(n, budget))
        self._claim_args = (n, budget)
        if got is None:
            return None
        claim, self._pending = got
        return claim

    def read(self):
        snap, self._pending = self._pending, None
        if snap is None:
            raise RuntimeError("read() must follow claim_steps() on the ray store client")
        return snap

    def new_local_state(self):
        return None  # kept by the server, per worker

    def apply(self, grad, snap, local, t=None):
        if self._claim_args is None:
            return _ray().get(self.server.apply.remote(self.worker, np.asarray(grad), snap, t))
        record, nxt = _ray().get(self.server.apply_and_claim.remote(
            self.worker, np.asarray(grad), snap, t, *self._claim_args))
        self._next = (nxt,)
        return record

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


class Worker:
    """One actor-learner; ``run`` returns its update records as tuples."""

    def __init__(self, worker: int, seed: int, config_dict: dict, loss_fn):
        from a3c_jax.async_driver import build_async_algorithm
        from a3c_jax.config import Config

        self.worker, self.seed = worker, seed
        self.algo = build_async_algorithm(Config.from_dict(config_dict), loss_fn)
        self.algo.compile()

    def ready(self) -> bool:
        return True

    def run(self, server, t0: float) -> int:
        self.records: list = []
        loop = self.algo.worker_loop(self.worker, self.seed, StoreClient(server, self.worker),
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


def train_one_seed_ray(algo, seed: int, on_progress: Callable[[int], None] | None = None,
                       loss_fn=None):
    """Like ``async_driver.train_one_seed`` with Ray actors. Returns (flat params, accounting,
    records, interruption or None)."""
    from a3c_jax.async_driver import UpdateRecord, make_monitor
    from a3c_jax.workers import WorkerError

    c = algo.config
    ray = ensure_ray(c.ray_address)
    server_cls = ray.remote(num_cpus=0, max_concurrency=c.workers + 2)(ParameterServer)
    worker_cls = ray.remote(num_cpus=worker_cpus(ray.cluster_resources(), c.workers),
                            max_concurrency=2)(Worker)
    server = server_cls.remote(algo.init_flat_params(seed), c.to_dict(), algo.with_target)
    actors = [worker_cls.remote(w, seed, c.to_dict(), loss_fn) for w in range(c.workers)]
    stopped: BaseException | None = None
    per_worker: list[list] = [[] for _ in range(c.workers)]
    try:
        try:
            ray.get([a.ready.remote() for a in actors])
            futures = [a.run.remote(server, time.time()) for a in actors]
            pending = dict(zip(futures, range(c.workers)))
            last_t = 0
            monitor = make_monitor(c, per_worker)

            def drain():
                got = ray.get([a.drain.remote(len(per_worker[w])) for w, a in enumerate(actors)])
                for w, rs in enumerate(got):
                    per_worker[w].extend(UpdateRecord(*r) for r in rs)

            while pending:
                done, _ = ray.wait(list(pending), timeout=0.25)
                for f in done:
                    pending.pop(f)
                    ray.get(f)  # raises the worker's error, if any
                drain()
                t, _ = ray.get(server.status.remote())
                if on_progress is not None:
                    on_progress(min(t, c.total_steps) - last_t)
                    last_t = min(t, c.total_steps)
                if monitor is not None and monitor.reached():
                    ray.get(server.stop.remote())
        except KeyboardInterrupt as exc:
            stopped = exc
        except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
            w = next((i for i, a in enumerate(actors) if str(a._actor_id.hex()) in str(exc)),
                     -1)
            stopped = WorkerError(w, exc, str(exc))
        ray.get(server.stop.remote())
        flat, lost, T = ray.get(server.final.remote())
    finally:
        for a in actors:
            ray.kill(a)
        ray.kill(server)
    records = [r for rs in per_worker for r in rs]
    return flat, {"lost": lost, "T": T}, records, stopped
