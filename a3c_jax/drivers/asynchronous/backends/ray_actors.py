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
  (``a3c_jax.drivers.asynchronous.supervisor``). The server is placed on the driver's node;
  the workers are spread over the cluster's nodes.
* A worker actor that dies (its process killed, its node lost) or whose loop raises is
  replaced, as the process backend does, up to ``max_restarts`` times per seed: a new actor
  on any live node, fresh environments, keys and epsilon re-derived from the live store
  (``store_state.build_worker``'s restart). Its updates already written stay; records of
  updates it wrote after the last poll die with it and are counted (``unrecorded``).
* ``--backend ray`` without ``--ray-address`` starts a local Ray instance; with one it joins
  that cluster (its nodes need this package installed, e.g. through a Ray runtime_env).

Ray is an optional extra (``pip install .[ray]``), imported only here.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from a3c_jax import _xla
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store_state import build_worker, worker_points
from a3c_jax.drivers.asynchronous.backends.launch import Launch
from a3c_jax.drivers.asynchronous.backends.ray_store import ParameterServer, StoreClient, _ray
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged, WorkerError


class Worker:
    """One actor-learner; ``run`` returns its number of update records. ``restart`` (count,
    T) re-derives a worker started again mid-run."""

    def __init__(self, worker: int, seed: int, config_dict: dict, loss_fn, points=None,
                 restart: tuple[int, int] | None = None):
        self.worker, self.seed = worker, seed
        self.runner = build_worker(config_dict, loss_fn, points, restart)  # resolved
        self.runner.compile()

    def ready(self) -> bool:
        return True

    def where(self) -> tuple[str, int]:
        """(Ray node id, process id) of this actor."""
        return _ray().get_runtime_context().get_node_id(), os.getpid()

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


def worker_runtime_env(cpus: float, environ=os.environ) -> dict:
    """The runtime environment of a worker actor given ``cpus`` CPUs: its thread pools (XLA's,
    Eigen's, OpenMP's, OpenBLAS', the ALE vector env's) sized to ``max(1, int(cpus))`` cores, as
    the process backend sizes its workers' (``a3c_jax._xla.pool_env``), instead of to every
    core of its node; ``$A3C_JAX_WORKER_CORES`` and variables the user set win there too."""
    env = _xla.pool_env(_xla.cores_per_worker(1, int(cpus), environ), environ)
    return {"env_vars": env} if env else {}


class RayLaunch(Launch):
    """One seed's W worker actors and the parameter server (``launch.Launch``); ``restore``
    is a ``store_state.store_state`` to start from."""

    def __init__(self, worker: AsyncWorker, seed: int, per_worker: list[list], loss_fn=None,
                 restore: dict | None = None):
        c = worker.config
        self.ray = ray = ensure_ray(c.ray_address)
        self.per_worker, self.total, self.W = per_worker, c.total_steps, c.workers
        self.max_restarts = c.max_restarts
        self.restarts: list[dict] = []   # worker, time_s, T, cause, unrecorded, node
        self.received = [0] * c.workers  # records drained from each worker's current actor
        self.offset = [0] * c.workers    # update index of a restarted actor's first record
        self._final: tuple | None = None
        self.final_store: dict | None = None
        here = ray.get_runtime_context().get_node_id()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        server_cls = ray.remote(num_cpus=0, max_concurrency=c.workers + 2,
                                scheduling_strategy=NodeAffinitySchedulingStrategy(here, False)
                                )(ParameterServer)
        self.server = server_cls.remote(worker.init_flat_params(seed), c.to_dict(),
                                        worker.with_target)
        if restore is not None:
            ray.get(self.server.restore.remote(restore))
        cpus = worker_cpus(ray.cluster_resources(), c.workers)
        self._new = lambda w, restart: ray.remote(
            num_cpus=cpus, max_concurrency=3, scheduling_strategy="SPREAD",
            runtime_env=worker_runtime_env(cpus))(Worker).remote(
                w, seed, c.to_dict(), loss_fn, worker_points(worker), restart)
        self.actors = [self._new(w, None) for w in range(c.workers)]
        self.pending: dict | None = None
        self.t0 = 0.0
        self._T = 0

    def _start(self) -> None:
        """Wait until every actor has compiled (one that fails is replaced, as in training),
        then start the loops on one clock."""
        ray = self.ray
        for w in range(self.W):
            while True:
                try:
                    ray.get(self.actors[w].ready.remote())
                    break
                except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as exc:
                    self._failed(w, exc)
        self.t0 = time.time()
        futures = [a.run.remote(self.server, self.t0) for a in self.actors]
        self.pending = dict(zip(futures, range(len(self.actors))))

    def where(self) -> list[tuple[str, int]]:
        """(node id, pid) of each worker's current actor."""
        return self.ray.get([a.where.remote() for a in self.actors])

    def _drain(self, w: int, timeout: float | None = None) -> None:
        got = self.ray.get(self.actors[w].drain.remote(self.received[w]), timeout=timeout)
        self.received[w] += len(got)
        self.per_worker[w].extend(UpdateRecord(*r)._replace(update=r[1] + self.offset[w])
                                  for r in got)

    def _failed(self, w: int, exc: BaseException) -> None:
        """Worker ``w``'s loop raised or its actor died: start a new actor, or raise
        ``WorkerError`` (caused by the worker's ``Diverged``: the seed's result, never
        restarted)."""
        ray = self.ray
        cause = getattr(exc, "cause", None)   # the worker's own exception, if Ray kept it
        if isinstance(cause, Diverged) or len(self.restarts) >= self.max_restarts:
            after = f" (after {len(self.restarts)} restarts)" if self.restarts else ""
            raise WorkerError(w, f"{type(exc).__name__}{after}", str(exc)) from (
                cause if isinstance(cause, Diverged) else exc)
        try:   # a loop that raised leaves its actor alive: take its last records
            self._drain(w, timeout=5.0)
        except ray.exceptions.RayError:
            pass
        ray.kill(self.actors[w])
        T, _ = ray.get(self.server.status.remote())
        if ray.get(self.server.stop_requested.remote()) or T >= self.total:
            return   # nothing left for it to do
        unrecorded = ray.get(self.server.written.remote(w)) - len(self.per_worker[w])
        event = {"worker": w, "time_s": round(time.time() - self.t0, 3) if self.t0 else 0.0,
                 "T": int(T),
                 "cause": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                 "unrecorded": int(unrecorded)}
        self.restarts.append(event)
        print(f"worker {w} restarted ({len(self.restarts)} of at most {self.max_restarts}) "
              f"at T={T}: {event['cause']}", file=sys.stderr, flush=True)
        self.offset[w] = len(self.per_worker[w]) + event["unrecorded"]
        self.received[w] = 0
        self.actors[w] = self._new(w, (len(self.restarts), int(T)))
        if self.pending is not None:   # training: its loop starts on the run's clock
            self.pending[self.actors[w].run.remote(self.server, self.t0)] = w

    def poll(self, timeout: float) -> bool:
        ray = self.ray
        errors = (ray.exceptions.RayTaskError, ray.exceptions.RayActorError)
        if self.pending is None:
            self._start()
        done, _ = ray.wait(list(self.pending), timeout=timeout)
        for f in done:
            w = self.pending.pop(f)
            try:
                ray.get(f)  # raises the worker's error, if any
            except errors as exc:
                self._failed(w, exc)
        for w in sorted(set(self.pending.values())):
            try:
                self._drain(w)
            except errors:
                pass   # its run future reports the death at the next poll
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
            for w in range(self.W):   # records of updates that reached the store after the
                try:                  # last poll
                    self._drain(w, timeout=stop_timeout_s)
                except ray.exceptions.RayError:
                    pass   # a failed worker: its error is what the run reports
        finally:
            for a in self.actors:
                ray.kill(a)
            ray.kill(self.server)
        return self._final
