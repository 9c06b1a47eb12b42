"""The asynchronous actor-learner: one worker loop for every method and every backend.

``AsyncWorker(config)`` holds one worker's compiled step (``algorithm.flat_step`` over its E
environments); ``loop(worker, seed, store, clock, records)`` returns the loop a backend runs
on a thread, in a process or in a Ray actor, against any object with the store's interface
(``shared.SharedStore``, or the Ray backend's client). Until the global counter T reaches the
budget, each iteration:

  1. claims t_max * E steps of T (for value-based methods the store copies theta^- <- theta
     for every multiple of ``target_interval`` the claim crosses: ``claim_steps``);
  2. reads a snapshot theta' of the shared parameters (and theta^-), without a lock in
     hogwild mode;
  3. calls the jitted step: unroll t_max steps with theta' (sampling from pi, or
     epsilon-greedy with this worker's annealed epsilons), the method's loss, its gradient
     (clipped if configured) — the same pure functions as the synchronous driver;
  4. unless the gradient has a NaN or an infinity (then the update is skipped and recorded
     with ``nonfinite`` = 1; ``max_nonfinite`` in a row raise ``Diverged``), writes the
     update into the store: the optimiser step (``optim.apply_in_place``, shared
     RMSProp by default) is applied to the shared values as they are at write time, with the
     learning rate at T_before; observation statistics, if any, are merged exactly;
  5. appends an ``UpdateRecord`` (versions read and written, staleness, metrics). A
     pipelined store (the Ray backend's client) returns the write's result one update later:
     the record is appended then, in order, and the last one when the loop ends.

Segments: by default (``--segments fixed``) they have a fixed length t_max and may cross an
episode end (returns and targets are cut at the boundary); ``--segments until-terminal`` ends
them at the episode's end as the paper does, so a segment may take fewer than t_max * E steps:
the worker keeps the steps it claimed but did not take as a credit against its next claim, so
T counts the env steps actually taken (within one segment per worker). A worker may drive
E > 1 environments.
"""

from __future__ import annotations

import collections

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.core import inplace, optim
from a3c_jax.config.schema import Config, Resolved
from a3c_jax.config.defaults import resolve
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.drivers.asynchronous.store import SharedStore


class WorkerError(RuntimeError):
    """A worker failed (raised, or its process died); carries its id and traceback."""

    def __init__(self, worker: int, message: str, tb: str = ""):
        super().__init__(f"worker {worker} failed: {message}"
                         + (f"\n--- worker {worker} traceback ---\n{tb}" if tb else ""))
        self.worker = worker
        self.traceback = tb


class Diverged(RuntimeError):
    """``max_nonfinite`` consecutive updates of one worker had a non-finite gradient (none
    was written: the store holds the last finite parameters)."""

    def __init__(self, seed: int, worker: int, env_steps: int, count: int):
        super().__init__(f"diverged: seed {seed}, worker {worker}: {count} consecutive "
                         f"non-finite gradients at env step {env_steps}")
        self.seed, self.worker, self.env_steps, self.count = seed, worker, env_steps, count

    def __reduce__(self):   # rebuilt from its fields across processes and Ray actors
        return Diverged, (self.seed, self.worker, self.env_steps, self.count)


def async_parts(config: Resolved, loss_fn: Callable | None, who: str, what: str
                ) -> tuple[Resolved, algorithm.Algorithm, optim.OptSpec]:
    """The config, the algorithm and the optimiser settings of ``what`` (an asynchronous
    form: real workers, or emulated ones) built by ``who``."""
    if not config.is_async:
        raise ValueError(f"backend: {config.algo} with backend {config.backend!r} runs on "
                         f"the synchronous driver, not on {what}")
    return (config, algorithm.make_algorithm(config, config.envs_per_worker, loss_fn),
            optim.OptSpec.from_config(config))


class AsyncWorker:
    """The compiled pieces of an asynchronous worker for one resolved config."""

    def __init__(self, config: Resolved, loss_fn: Callable | None = None):
        self.config, self.algo, self.spec = async_parts(config, loss_fn, "AsyncWorker",
                                                        "asynchronous workers")
        template = self.algo.init_params(jax.random.key(0))
        flat, self._unravel = ravel_pytree(template)
        self.layout = algorithm.StepLayout(int(flat.shape[0]),
                                           algorithm.stats_slice(template))
        self.step = jax.jit(algorithm.flat_step(self.algo, self.spec, self._unravel,
                                                self.layout))
        self._init_actor = jax.jit(self.algo.init_actor)
        self._compiled = False

    @classmethod
    def from_config(cls, config: Config, loss_fn: Callable | None = None) -> "AsyncWorker":
        """For callers holding an unresolved config (notebooks, tests); ``runner.run``
        resolves once and builds ``AsyncWorker(resolved)``."""
        return cls(resolve(config), loss_fn)

    @property
    def num_params(self) -> int:
        return self.layout.num_params

    @property
    def with_target(self) -> bool:
        return self.algo.with_target

    def init_flat_params(self, seed: int) -> np.ndarray:
        return algorithm.init_flat_params(self.algo, seed)[0]

    def unravel(self, flat: np.ndarray):
        return jax.device_get(self._unravel(jnp.asarray(flat)))

    def make_store(self, seed: int) -> SharedStore:
        """A private store in this process holding ``seed``'s initial parameters."""
        return SharedStore(self.init_flat_params(seed), self.spec, self.config.store_mode,
                           with_target=self.with_target)

    def init_actor(self, seed: int, worker: int):
        """(actor state, run key) of one worker: its E environments are actors
        w*E .. w*E + E - 1 of the run (their final epsilons, for value methods)."""
        c = self.config
        k_env, k_run = algorithm.worker_keys(seed, worker)
        eps = None
        if self.algo.is_value:
            E = c.envs_per_worker
            all_eps = self.algo.actor_epsilons(c, jax.random.key(seed), c.workers * E)
            eps = all_eps[worker * E:(worker + 1) * E]
        return self._init_actor(k_env, eps), k_run

    def compile(self) -> None:
        """Compile the step before any worker starts: one call with the loop's argument
        types fills the jitted function's cache, whose C++ dispatch path the loop then uses
        (faster per call than calling a ``Compiled`` object from Python)."""
        if self._compiled:
            return
        inplace.warm_up()
        actor, key = self.init_actor(0, 0)
        flat = np.zeros((self.num_params,), np.float32)
        target = flat if self.with_target else None
        out, _, _ = self.step(flat, target, actor, key)
        np.asarray(out)
        self._compiled = True

    def loop(self, worker: int, seed: int, store, clock: Callable[[], float],
             records: list, profile: np.ndarray | None = None) -> Callable:
        """The worker's loop ``loop(stop)``; it checks ``stop`` (an Event) once per update.

        ``profile`` (float64 [len(PHASES) + 1]), if given, accumulates the seconds spent in
        each of ``PHASES`` and, last, the number of updates (``benchmarks/``)."""
        self.compile()
        c = self.config
        n_steps, budget = c.steps_per_update, c.total_steps
        interval = c.target_interval if self.with_target else 0
        layout, step = self.layout, self.step
        now = time.perf_counter

        waiting: collections.deque = collections.deque()   # updates whose write is in flight

        def emit(results) -> None:
            for rec in results:   # write results, in the order of this worker's writes
                u_, after_, t_, metrics = waiting.popleft()
                records.append(UpdateRecord(worker, u_, after_, t_, rec.version_read,
                                            rec.version_written, rec.staleness, *metrics))

        def loop(stop):
            try:
                run(stop)
            except BaseException:
                if waiting and hasattr(store, "flush"):
                    try:   # the records of writes that were in flight, where they can be had
                        emit(store.flush())
                    except Exception:  # noqa: BLE001 - the loop's own error is the one to raise
                        pass
                raise
            if waiting and hasattr(store, "flush"):   # a pipelined store's last write
                emit(store.flush())

        def run(stop):
            actor, key = self.init_actor(seed, worker)
            local = store.new_local_state()
            if layout.stats is not None:
                store.protect(*layout.stats)
            u = 0
            skipped = 0   # consecutive updates skipped for a non-finite gradient
            credit = 0   # steps claimed from T that no segment has taken yet (until-terminal)
            while not stop.is_set():
                t0 = now()
                claim = store.claim_steps(max(n_steps - credit, 0), budget, interval)
                if claim is None:
                    break
                before, after = claim
                credit += after - before
                t1 = now()
                snap = store.read()
                target = store.read_target() if interval else None
                t2 = now()
                out, actor, key = step(snap.params, target, actor, key)
                out_host = np.asarray(out)
                t3 = now()
                res = layout.unpack(out_host)
                credit -= res.steps
                if not res.finite:   # never written: one NaN would reach every worker
                    skipped += 1
                    records.append(UpdateRecord(worker, u, after, clock(), snap.version,
                                                snap.version, 0,
                                                *layout.metrics_list(out_host), nonfinite=1))
                    u += 1
                    if skipped >= c.max_nonfinite:
                        raise Diverged(seed, worker, after, skipped)
                    continue
                skipped = 0
                rec = store.apply(res.grad, snap, local, t=before)
                if layout.stats is not None:
                    store.merge_stats(layout.stats[0], res.stats)
                t4 = now()
                waiting.append((u, after, clock(), layout.metrics_list(out_host)))
                # a pipelined store (Ray) answers None: the write completes while the next
                # segment runs, and ``completed()`` hands its result over later
                emit([rec] if rec is not None else store.completed())
                u += 1
                if profile is not None:
                    profile[:] += (t1 - t0 + now() - t4, t2 - t1, t3 - t2, t4 - t3, 1.0)

        return loop


PHASES = ("bookkeeping", "read", "step", "apply")
"""Phases of one update in ``AsyncWorker.loop``'s profile: claims and records; the snapshot
copy (and target read); the jitted step, dispatch and compute, until its result is on the
host; the optimiser step on the store (and statistics merge)."""
