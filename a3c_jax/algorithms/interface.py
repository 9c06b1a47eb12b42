"""The algorithm interface: the pure pieces of one method, and nothing about threads.

``make_algorithm(config, num_envs)`` builds an ``Algorithm`` for any of the paper's methods
on a batch of ``num_envs`` environments: the actor-critic (A3C, and A2C, its synchronous
form) or a value-based method (one-step Q, one-step SARSA, n-step Q). Every driver uses the
same pieces:

* ``init_params(key)`` and ``init_actor(key, eps_final)`` (an ``rollout.ActorState``);
* ``unroll(params, actor, key)``: t_max steps with the method's behaviour policy (sampling
  from pi, or epsilon-greedy on Q with the actor's annealed epsilon);
* ``loss(params, target_params, traj)`` -> (loss, metrics); the actor-critic ignores
  ``target_params``;
* ``segment_grad(params, target_params, actor, key)``: unroll, then differentiate the loss;
  returns the gradient, the new actor state, the trajectory and the update's ``Metrics``;
* ``post_update(params, traj)``: what follows the gradient step outside the optimiser (the
  running observation statistics); ``steps_taken(traj)``: a batch's env steps (fewer than
  t_max * num_envs with until-terminal segments). With ``reward_norm`` the loss sees rewards
  scaled by the actor's running return scale (``a3c_jax.core.reward_norm``).

``flat_step`` wraps ``segment_grad`` for the asynchronous workers: flat parameter vectors in,
one packed vector out, which ``StepLayout.unpack`` turns into a named ``StepOut``.

The config is a ``Resolved`` (``defaults.resolve``); custom losses (``loss_fn``) take the
signature of ``losses.actor_critic_segment_loss`` (actor-critic) or
``value_losses.q_learning_segment_loss`` (value-based methods).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.flatten_util import ravel_pytree

from a3c_jax.algorithms import acting
from a3c_jax.algorithms.metrics import Metrics, update_metrics
from a3c_jax.core import (combine, exploration, losses, networks, normalization, optim,
                          reward_norm, rollout, value_losses)
from a3c_jax.config.schema import VALUE_ALGOS, Resolved
from a3c_jax.core.envs import Env, make_env

VALUE_LOSSES: dict[str, Callable] = {
    "q1": value_losses.q_learning_segment_loss,
    "sarsa": value_losses.sarsa_segment_loss,
    "nq": value_losses.nstep_q_segment_loss,
}
_EPS_STREAM = 0x3E95  # fold_in tag: the final-epsilon draw's own stream of a seed's root key


@dataclasses.dataclass(frozen=True, eq=False)
class Algorithm:
    """One method's pure pieces for one environment batch (see the module docstring)."""

    name: str
    env: Env
    network: nn.Module
    loss_fn: Callable
    loss_cfg: losses.LossConfig
    t_max: int
    eps_anneal_steps: int
    until_terminal: bool = False
    reward_norm: bool = False
    num_actors: int = 1   # environments of the run (N, or W * E): epsilon's clock is global

    @property
    def is_value(self) -> bool:
        return self.name in VALUE_ALGOS

    @property
    def with_target(self) -> bool:
        return self.is_value

    @property
    def recurrent(self) -> bool:
        return networks.is_recurrent(self.network)

    @property
    def apply_fn(self) -> Callable:
        return self.network.apply

    # --- parameters and actors -----------------------------------------------------------
    def init_params(self, key):
        return networks.init_params(self.network, key, self.env.obs_shape)

    def init_actor(self, key, eps_final=None) -> rollout.ActorState:
        """An actor's initial state: its environments, plus a zero carry (recurrent), no
        chosen action (SARSA), or its exploration schedule (value methods: ``eps_final``
        [num_envs], the final epsilon of each environment)."""
        state = rollout.ActorState(env=self.env.reset(key))
        if self.recurrent:
            state = state._replace(carry=self.network.initial_carry((self.env.num_envs,)))
        if self.name == "sarsa":
            state = state._replace(action=jnp.full((self.env.num_envs,), -1, jnp.int32))
        if self.is_value:
            if eps_final is None:
                raise ValueError("a value-based actor needs its final epsilons")
            state = state._replace(eps_final=jnp.asarray(eps_final, jnp.float32),
                                   steps=jnp.zeros((), jnp.int32))
        if self.reward_norm:
            state = state._replace(ret_norm=reward_norm.init(self.env.num_envs))
        return state

    def actor_epsilons(self, config: Config, root_key, num_actors: int) -> jax.Array:
        """[num_actors] final epsilons of a run whose root key is ``jax.random.key(seed)``.

        Actor i is environment i of the run: async worker w drives actors w*E .. w*E+E-1, the
        sync driver actors 0 .. N-1, so an async W x E run and a sync W*E-env run with the
        same seed explore with the same epsilons."""
        return exploration.final_epsilon(config, jax.random.fold_in(root_key, _EPS_STREAM),
                                         (num_actors,))

    # --- acting, loss, gradient ------------------------------------------------------------
    def epsilon(self, actor: rollout.ActorState) -> jax.Array:
        """Each env's epsilon, annealed over the run's env steps: own steps x num_actors."""
        return exploration.epsilon_at(actor.steps * self.num_actors, actor.eps_final,
                                      self.eps_anneal_steps)

    def policy(self, actor: rollout.ActorState) -> rollout.Policy:
        """The behaviour policy for ``actor``'s next segment."""
        return acting.acting_policy(self.network, self.is_value,
                             self.epsilon(actor) if self.is_value else None)

    def unroll(self, params, actor: rollout.ActorState, key):
        return rollout.unroll(self.env, self.policy(actor), params, actor, key, self.t_max,
                              self.until_terminal)

    def normalize_rewards(self, actor: rollout.ActorState, traj):
        """(actor, traj) with the segment's rewards divided by the actor's running return
        scale (``a3c_jax.core.reward_norm``); unchanged without ``reward_norm``."""
        if not self.reward_norm:
            return actor, traj
        ret_norm, traj = reward_norm.normalize_traj(actor.ret_norm, traj, self.loss_cfg.gamma)
        return actor._replace(ret_norm=ret_norm), traj

    def steps_taken(self, traj) -> jax.Array:
        """Env steps in a segment batch: t_max * num_envs, or the steps in its segments."""
        return combine.steps_taken(traj.mask, traj.reward.shape)

    def loss(self, params, target_params, traj):
        if self.is_value:
            return self.loss_fn(params, target_params, self.apply_fn, traj, self.loss_cfg)
        return self.loss_fn(params, self.apply_fn, traj, self.loss_cfg)

    def segment_grad(self, params, target_params, actor: rollout.ActorState, key):
        """(grads, actor, traj, Metrics) of one segment acted with ``params`` (``traj``
        holds the rewards the loss saw: normalised with ``reward_norm``)."""
        actor, traj = self.unroll(params, actor, key)
        actor, traj = self.normalize_rewards(actor, traj)
        (_, m), grads = jax.value_and_grad(self.loss, has_aux=True)(params, target_params,
                                                                     traj)
        return grads, actor, traj, self.metrics(traj, m, grads)

    def metrics(self, traj, m: dict, grads) -> Metrics:
        """The update's ``Metrics`` (``a3c_jax.algorithms.metrics``); ``grads`` unclipped."""
        return update_metrics(self.is_value, rollout.episode_stats(traj), m, grads)

    def post_update(self, params, traj):
        """Parameters after the optimiser step: observation statistics merged (if any)."""
        return normalization.update_params(params, traj.obs, traj.mask)


def make_algorithm(config: Resolved, num_envs: int, loss_fn: Callable | None = None
                   ) -> Algorithm:
    """The ``Algorithm`` of a resolved ``config`` on ``num_envs`` environments."""
    env = make_env(config.env, num_envs, config, training=True)
    network = acting.make_network(config, env)
    if config.algo in VALUE_ALGOS:
        default = VALUE_LOSSES[config.algo]
    else:
        default = (losses.recurrent_actor_critic_segment_loss
                   if networks.is_recurrent(network) else losses.actor_critic_segment_loss)
    return Algorithm(name=config.algo, env=env, network=network, loss_fn=loss_fn or default,
                     loss_cfg=losses.loss_config(config), t_max=config.t_max,
                     eps_anneal_steps=config.eps_anneal_steps,
                     until_terminal=config.segments == "until-terminal",
                     reward_norm=bool(config.reward_norm),
                     num_actors=(config.num_envs if config.is_sync
                                 else config.workers * config.envs_per_worker))


# --- the flat step of an asynchronous worker -----------------------------------------------

class StepOut(NamedTuple):
    """A worker step's result: flat gradient, observation statistics (flat; empty without
    them), metrics, env steps taken (``Algorithm.steps_taken``), gradient all finite."""

    grad: np.ndarray
    stats: np.ndarray
    metrics: Metrics
    steps: int = 0
    finite: bool = True


@dataclasses.dataclass(frozen=True)
class StepLayout:
    """Where each part of a flat step's packed output lies; ``unpack`` names them."""

    num_params: int
    stats: tuple[int, int] | None   # [start, stop) of the statistics in the parameters

    @property
    def num_stats(self) -> int:
        return 0 if self.stats is None else self.stats[1] - self.stats[0]

    def metrics_list(self, out: np.ndarray) -> list[float]:
        """The metrics of a packed output as Python floats, in ``Metrics`` order."""
        start = self.num_params + self.num_stats
        return out[start:start + len(Metrics._fields)].tolist()

    def steps(self, out: np.ndarray) -> int:
        """The env steps the segments of a packed output took (last entry)."""
        return int(out[self.num_params + self.num_stats + len(Metrics._fields)])

    def finite(self, out: np.ndarray) -> bool:   # the entry after the steps
        return bool(out[self.num_params + self.num_stats + len(Metrics._fields) + 1] > 0)
    def split(self, out) -> tuple:
        """(flat gradient, flat statistics, Metrics) of a packed output, NumPy or traced."""
        p, k = self.num_params, self.num_stats
        return out[:p], out[p:p + k], Metrics(*out[p + k:p + k + len(Metrics._fields)])

    def unpack(self, out: np.ndarray) -> StepOut:
        return StepOut(*self.split(out), self.steps(out), self.finite(out))


def stats_slice(params) -> tuple[int, int] | None:
    """Where the observation statistics (``normalization.COLLECTION``) sit in the flat
    parameter vector of ``params``, as [start, stop); None when there are none."""
    if not normalization.has_stats(params):
        return None
    marked = jax.tree.map(jnp.zeros_like, params)
    marked = normalization.set_stats(
        marked, jax.tree.map(jnp.ones_like, normalization.get_stats(params)))
    idx = np.flatnonzero(np.asarray(ravel_pytree(marked)[0]))
    start, stop = int(idx[0]), int(idx[-1]) + 1
    if stop - start != idx.shape[0]:
        raise ValueError("observation statistics are not contiguous in the flat parameters")
    return start, stop


def flat_step(algo: Algorithm, spec: optim.OptSpec, unravel: Callable,
              layout: StepLayout) -> Callable:
    """(flat_params, flat_target or None, actor, key) -> (packed, actor, key), to be jitted.

    One call per update; parameters in and the gradient out are flat vectors, so the host
    copies one buffer each way (per-call cost grows with the number of leaves). The gradient
    is clipped here (``optim.clip``). With observation statistics, the statistics of the
    segment's observations alone follow the gradient, for the worker to merge into the
    store's current statistics (the gradient is zero there). The metrics follow, then the
    env steps the segments took (``StepLayout.steps``), then 1 if every gradient entry is
    finite, else 0 (``StepLayout.finite``; not the squared norm: it overflows at 1.8e19).
    """

    def step(flat_params, flat_target, actor, key):
        key, k_unroll = jax.random.split(key)
        params = unravel(flat_params)
        target = None if flat_target is None else unravel(flat_target)
        grads, actor, traj, metrics = algo.segment_grad(params, target, actor, k_unroll)
        flat_grad, _ = ravel_pytree(optim.clip_grads(grads, spec))
        parts = [flat_grad]
        if layout.stats is not None:
            own = normalization.get_stats(params)
            parts.append(ravel_pytree(normalization.batch_stats(own, traj.obs, traj.mask))[0])
        parts.append(jnp.stack([jnp.asarray(x, jnp.float32) for x in metrics]
                               + [algo.steps_taken(traj).astype(jnp.float32),
                                  jnp.all(jnp.isfinite(flat_grad)).astype(jnp.float32)]))
        return jnp.concatenate(parts), actor, key

    return step


def worker_keys(seed: int, worker: int):
    """(env key, run key) of one asynchronous worker: independent streams per seed/worker."""
    _, k_workers = jax.random.split(jax.random.key(seed))
    return tuple(jax.random.split(jax.random.fold_in(k_workers, worker)))


def init_flat_params(algo: Algorithm, seed: int) -> tuple[np.ndarray, Callable]:
    """The initial parameters of ``seed`` as a flat float32 vector, and its unravel."""
    k_params, _ = jax.random.split(jax.random.key(seed))
    flat, unravel = ravel_pytree(algo.init_params(k_params))
    return np.array(flat, np.float32), unravel
