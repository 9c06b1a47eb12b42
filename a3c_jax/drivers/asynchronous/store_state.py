"""Continuing an asynchronous run: the store's state in and out, and the resumed workers.

What a resumed asynchronous seed gets back exactly: the shared parameters, the shared
RMSProp statistics, the target parameters, the lost-update probe and the counters (T,
version, target copies) as the checkpoint holds them (``store_state`` / ``restore_store``;
after an interruption this is the store once every worker had stopped, so nothing is lost;
a periodic checkpoint is a lock-free snapshot of a running store, so up to one segment per
worker in flight at that moment is counted in T without its update). The learning-rate
schedule reads T, so it continues where it was (it anneals to the new ``total_steps``).

What is re-derived: each worker's environments, PRNG keys and recurrent carries
(``ResumedWorker``: the worker's keys with the resume count folded in, so a resumed segment
never replays the random stream of an earlier one; episodes in progress at the interruption
are not continued), and per-worker optimiser statistics (``rmsprop_local``, ``sgd``'s
momentum), which start from zero. Value-based workers keep their final epsilons (drawn from
the seed, as before) and continue their epsilon schedules at T / (W * E) env steps per
environment, where an uninterrupted run's environments would be.

A worker that dies mid-run and is started again (the process and Ray backends' restarts)
is re-derived the same way from the live store: fresh environments, its keys with the restart
count folded in (``RESTART_STREAM``), its epsilons (value methods) drawn again from the seed
and the restart count, and its epsilon schedules at T / (W * E) env steps per environment.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.config.schema import Resolved
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.worker import AsyncWorker

BUFFERS = ("params", "rms", "target", "probe", "counters")
RESTART_STREAM = 0x5E57A27
"""Folded into a restarted worker's keys before its restart count: a stream no resume and no
first start uses."""


class ResumePoint(NamedTuple):
    """Where a seed resumes: how many times it has been resumed, and its T."""

    count: int
    env_steps: int


def store_state(store: SharedStore) -> dict:
    """Copies of the store's buffers and counters (None for a buffer it does not have)."""
    mem = store.memory
    return {"params": mem.params.copy(), "rms": None if mem.rms is None else mem.rms.copy(),
            "target": None if mem.target is None else mem.target.copy(),
            "probe": mem.probe.copy(), "counters": mem.counters.copy()}


def restore_store(store: SharedStore, state: dict) -> None:
    """Write a ``store_state`` back into ``store`` (before any worker starts); ValueError when
    it does not fit the store."""
    mem = store.memory
    for name in BUFFERS:
        dst, src = getattr(mem, name), state.get(name)
        if dst is None:
            continue
        if src is None:
            raise ValueError(f"checkpoint: the store's {name} buffer is missing")
        src = np.asarray(src)
        if src.shape != dst.shape:
            raise ValueError(f"checkpoint: store buffer {name} has shape {src.shape} where "
                             f"this config's store has {dst.shape} (another config?)")
        dst[:] = src


class ResumedWorker(AsyncWorker):
    """``AsyncWorker`` whose actors start where a resumed seed continues (module docstring);
    ``points`` maps a seed to its ``ResumePoint`` (a seed not in it starts afresh);
    ``restart`` (count, T) re-derives a worker process started again mid-run."""

    def __init__(self, config: Resolved, loss_fn: Callable | None = None,
                 points: dict[int, ResumePoint] | None = None,
                 restart: tuple[int, int] | None = None):
        super().__init__(config, loss_fn)
        self.points = dict(points or {})
        self.restart = restart

    def init_actor(self, seed: int, worker: int):
        actor, key = super().init_actor(seed, worker)
        point = self.points.get(seed)
        if (point is None or point.count == 0) and self.restart is None:
            return actor, key
        keys = algorithm.worker_keys(seed, worker)
        eps, env_steps = actor.eps_final, point.env_steps if point else 0
        if point is not None and point.count:
            keys = tuple(jax.random.fold_in(k, point.count) for k in keys)
        if self.restart is not None:
            count, env_steps = self.restart
            keys = tuple(jax.random.fold_in(jax.random.fold_in(k, RESTART_STREAM), count)
                         for k in keys)
            if eps is not None:   # drawn again, from the seed and the restart count
                c, E = self.config, self.config.envs_per_worker
                root = jax.random.fold_in(jax.random.key(seed), RESTART_STREAM + count)
                eps = self.algo.actor_epsilons(c, root, c.workers * E)[worker * E:
                                                                       (worker + 1) * E]
        k_env, k_run = keys
        actor = self._init_actor(k_env, eps)
        if actor.steps is not None:
            c = self.config
            per_env = env_steps // (c.workers * c.envs_per_worker)
            actor = actor._replace(steps=jnp.asarray(per_env, jnp.int32))
        return actor, k_run


def build_worker(config_dict: dict, loss_fn: Callable | None,
                 points: dict[int, ResumePoint] | None,
                 restart: tuple[int, int] | None = None) -> AsyncWorker:
    """The worker a backend builds in its own process from a resolved config."""
    return ResumedWorker(Resolved.from_dict(config_dict), loss_fn, points, restart)


def worker_points(worker: AsyncWorker) -> dict[int, ResumePoint] | None:
    """The resume points a backend passes on to the workers it builds."""
    return getattr(worker, "points", None)
