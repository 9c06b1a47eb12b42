"""A3C: asynchronous advantage actor-critic (paper, supplementary Algorithm S3).

Each worker thread, until the global counter T reaches the budget:
  1. claims t_max * E steps of T;
  2. reads a snapshot theta' of the shared parameters (no lock in hogwild mode);
  3. calls its jitted step: unroll t_max steps in its own E environments with pi(.|s; theta'),
     bootstrapped returns, the actor-critic loss, its gradient (clipped if configured) —
     the same pure functions as the synchronous A2C;
  4. writes the update into the shared store: the optimiser step (shared RMSProp by default,
     per-worker RMSProp or momentum SGD) is applied in place to the shared values as they are
     at write time, and the staleness of the snapshot is recorded.

Differences from the paper's pseudocode, on purpose: segments have a fixed length t_max and
may cross an episode end (the returns cut at the boundary, so each step's return is the one
the paper computes); the environment batch E per worker may exceed 1.

Continuous actions use the paper's Gaussian policy. With ``config.recurrent`` each worker keeps
its LSTM carry between its segments (reset at its episode ends; gradients truncated at segment
boundaries). With observation normalisation the running statistics are part of the shared
parameters (a region no optimiser step changes): each worker normalises with the statistics in
its snapshot, merges its segment's observations into them and writes them back
(``SharedStore.assign``; concurrent merges may drop one another, last writer wins).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from a3c_jax import learner, losses as losses_lib, networks, rollout
from a3c_jax.async_driver import FlatParams, UpdateRecord, run_async
from a3c_jax.config import Config, resolve_defaults
from a3c_jax.envs import Env
from a3c_jax.runner import RunResult


class A3C(FlatParams):
    """The pure pieces of A3C for one config, and the worker loop that drives them."""

    with_target = False

    def __init__(self, config: Config, loss_fn: losses_lib.SegmentLoss | None = None):
        config.validate()
        if config.algo != "a3c":
            raise ValueError(f"algo: the A3C driver runs a3c, got {config.algo!r}")
        self.env = Env(config.env, config.envs_per_worker)
        config = resolve_defaults(config, self.env)
        self.config = config
        self.network = networks.make_actor_critic(config, self.env)
        self.recurrent = networks.is_recurrent(self.network)
        self.apply_fn = self.network.apply
        if self.recurrent:
            self.loss_fn = loss_fn or losses_lib.recurrent_actor_critic_segment_loss
            policy = rollout.recurrent_sampling_policy(self.apply_fn)
        else:
            self.loss_fn = loss_fn or losses_lib.actor_critic_segment_loss
            policy = rollout.sampling_policy(self.apply_fn)
        self.segment_grad = learner.make_segment_grad(
            self.env, policy, self.apply_fn, self.loss_fn, losses_lib.loss_config(config),
            config.t_max, recurrent=self.recurrent)
        template = self.init_params(jax.random.key(0))
        flat, self._unravel = ravel_pytree(template)
        self.num_params = int(flat.shape[0])
        self.stats = learner.stats_slice(template)
        self.step = jax.jit(learner.make_flat_worker_step(self.segment_grad, self._unravel,
                                                          config.max_grad_norm, self.stats))
        self.reset = jax.jit(self._reset)
        self._compiled = None

    def _reset(self, key):
        """A worker's initial state: its environments (and a zero carry when recurrent)."""
        env_state = self.env.reset(key)
        if not self.recurrent:
            return env_state
        return rollout.RecurrentState(env_state,
                                      self.network.initial_carry((self.env.num_envs,)))

    def init_params(self, key):
        return networks.init_actor_critic(self.network, key, self.env.obs_shape)

    def compile(self) -> None:
        """Compile the step and reset before any thread starts (the first call compiles)."""
        if self._compiled is not None:
            return
        k_env, k_run = self.worker_keys(0, 0)
        env_state = self.reset(k_env)
        flat = jnp.zeros((self.num_params,), jnp.float32)
        self._compiled = self.step.lower(flat, env_state, k_run).compile()
        jax.block_until_ready(self._compiled(flat, env_state, k_run))

    def worker_loop(self, worker: int, seed: int, store, clock: Callable[[], float],
                    records: list) -> Callable:
        c = self.config
        k_env, k_run = self.worker_keys(seed, worker)
        n_steps = c.steps_per_update
        P = self.num_params
        stats = self.stats
        K = 0 if stats is None else stats[1] - stats[0]
        step = self._compiled

        def loop(stop):
            env_state, key = self.reset(k_env), k_run
            local = store.new_local_state()
            if stats is not None:
                store.protect(*stats)
            u = 0
            while not stop.is_set():
                claim = store.claim_steps(n_steps, c.total_steps)
                if claim is None:
                    break
                snap = store.read()
                out, env_state, key = step(snap.params, env_state, key)
                out = np.asarray(out)
                rec = store.apply(out[:P], snap, local, t=claim[0])
                if stats is not None:
                    store.merge_stats(stats[0], out[P:P + K])
                m = out[P + K:]
                records.append(UpdateRecord(
                    worker, u, claim[1], clock(), rec.version_read, rec.version_written,
                    rec.staleness, float(m[0]), float(m[1]), float(m[2]), float(m[3]),
                    float(m[4]), float(m[5])))
                u += 1

        return loop


def run_a3c(config: Config, loss_fn: losses_lib.SegmentLoss | None = None,
            write: bool = True) -> RunResult:
    return run_async(A3C(config, loss_fn), write=write, loss_fn=loss_fn)
