"""Synchronous advantage actor-critic (A2C): the zero-staleness baseline.

``make_train(config) -> Trainer``; ``trainer.train(key)`` is one pure function (``lax.scan``
over updates, ``vmap`` over the N environments inside the env adapter) that can be jitted and
``vmap``-ped over seeds (``trainer.train_seeds``) or over scalar hyperparameters. For progress
bars and wall-clock curves, ``trainer.run_chunk`` scans a fixed number of updates per call.

The loss, the unroll and the optimiser are the same functions the asynchronous workers call.
The policy distribution follows the action space (categorical or the paper's Gaussian); with
``config.recurrent`` every environment keeps its LSTM carry in ``TrainState.carry`` across
updates (reset at its episode ends); with observation normalisation the running statistics
sit in the parameters' ``"obs_norm"`` collection and are updated after each gradient step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from a3c_jax import losses as losses_lib
from a3c_jax import learner, networks, normalization, optim, rollout
from a3c_jax.config import Config, resolve_defaults
from a3c_jax.envs import Env, EnvState


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    env_state: EnvState
    key: jax.Array
    update: jax.Array  # int32 number of updates done
    carry: Any = None  # recurrent networks: LSTM carry [B, ...] for env_state.obs


class UpdateMetrics(NamedTuple):
    """Per-update curve entries (each a scalar per update)."""

    env_steps: jax.Array        # env steps after this update
    episode_return: jax.Array   # mean return of episodes completed in this update, NaN if none
    episodes: jax.Array         # number of episodes completed in this update
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    total_loss: jax.Array


def segment_metrics(traj: rollout.Trajectory, loss_metrics: dict, env_steps) -> UpdateMetrics:
    ret_sum, n_done = rollout.episode_stats(traj)
    mean_ret = jnp.where(n_done > 0, ret_sum / jnp.maximum(n_done, 1), jnp.nan)
    return UpdateMetrics(env_steps=env_steps, episode_return=mean_ret, episodes=n_done,
                         policy_loss=loss_metrics["policy_loss"],
                         value_loss=loss_metrics["value_loss"],
                         entropy=loss_metrics["entropy"], total_loss=loss_metrics["total"])


class Trainer:
    """Holds the pure pieces of A2C for one config; methods are pure and jittable."""

    def __init__(self, config: Config, loss_fn: losses_lib.SegmentLoss | None = None):
        config.validate()
        if config.algo not in ("a2c",):
            raise ValueError(f"algo: the synchronous actor-critic driver runs a2c, got "
                             f"{config.algo!r}")
        self.env = Env(config.env, config.num_envs)
        config = resolve_defaults(config, self.env)
        self.config = config
        self.network = networks.make_actor_critic(config, self.env)
        self.recurrent = networks.is_recurrent(self.network)
        self.apply_fn = self.network.apply
        default_loss = (losses_lib.recurrent_actor_critic_segment_loss if self.recurrent
                        else losses_lib.actor_critic_segment_loss)
        self.loss_fn = loss_fn or default_loss
        self.loss_cfg = losses_lib.loss_config(config)
        self.num_updates = config.num_updates
        self.optimizer = optim.make_optimizer(config, self.num_updates)
        if self.recurrent:
            self.policy = rollout.recurrent_sampling_policy(self.apply_fn)
        else:
            self.policy = rollout.sampling_policy(self.apply_fn)
        self.grad = learner.make_segment_grad(self.env, self.policy, self.apply_fn, self.loss_fn,
                                              self.loss_cfg, config.t_max,
                                              recurrent=self.recurrent)

    def init_params(self, key):
        return networks.init_actor_critic(self.network, key, self.env.obs_shape)

    def init(self, key) -> TrainState:
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.init_params(k_params)
        carry = self.network.initial_carry((self.env.num_envs,)) if self.recurrent else None
        return TrainState(params=params, opt_state=self.optimizer.init(params),
                          env_state=self.env.reset(k_env), key=k_run,
                          update=jnp.zeros((), jnp.int32), carry=carry)

    def update(self, state: TrainState) -> tuple[TrainState, UpdateMetrics]:
        key, k_unroll = jax.random.split(state.key)
        if self.recurrent:
            grads, rstate, traj, metrics = self.grad(
                state.params, rollout.RecurrentState(state.env_state, state.carry), k_unroll)
            env_state, carry = rstate.env, rstate.carry
        else:
            grads, env_state, traj, metrics = self.grad(state.params, state.env_state, k_unroll)
            carry = None
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        params = normalization.update_params(params, traj.obs)
        n = state.update + 1
        new_state = TrainState(params=params, opt_state=opt_state, env_state=env_state,
                               key=key, update=n, carry=carry)
        env_steps = n * self.config.steps_per_update
        return new_state, segment_metrics(traj, metrics, env_steps)

    def run_chunk(self, state: TrainState, num_updates: int) -> tuple[TrainState, UpdateMetrics]:
        """``num_updates`` updates in one scan (``num_updates`` must be static under jit)."""
        return jax.lax.scan(lambda s, _: self.update(s), state, None, length=num_updates)

    def train(self, key) -> tuple[TrainState, UpdateMetrics]:
        """The whole budget in one scan; jit it, or vmap it over seeds."""
        return self.run_chunk(self.init(key), self.num_updates)

    def train_sharded(self, key) -> tuple[TrainState, UpdateMetrics]:
        """``train`` with the env batch split over all local devices (one seed)."""
        state = self.shard(jax.jit(self.init)(key))
        return jax.jit(lambda s: self.run_chunk(s, self.num_updates))(state)

    # --- sharding the environment batch over local devices --------------------------------
    def env_mesh(self):
        """A 1-D mesh over the local devices, or None when there is one device or the env
        batch does not divide evenly."""
        n = jax.local_device_count()
        if n <= 1 or self.config.num_envs % n:
            return None
        return jax.make_mesh((n,), ("envs",), axis_types=(jax.sharding.AxisType.Auto,))

    def shard(self, state: TrainState, batch_axis: int = 0) -> TrainState:
        """Place ``state`` so the env axis (``batch_axis``: 0, or 1 under a seed vmap) is split
        over the local devices and everything else is replicated. Jitting the update on such
        a state partitions the unroll across devices (XLA SPMD); the loss' mean over envs
        becomes an all-reduce. A no-op on one device."""
        mesh = self.env_mesh()
        if mesh is None:
            return state
        from jax.sharding import NamedSharding, PartitionSpec as P

        n = self.config.num_envs

        def place(x, split: bool):
            shape = getattr(x, "shape", ())
            if split and len(shape) > batch_axis and shape[batch_axis] == n:
                spec = P(*([None] * batch_axis + ["envs"]))
            else:
                spec = P()
            return jax.device_put(x, NamedSharding(mesh, spec))

        return state.replace(
            env_state=jax.tree.map(lambda x: place(x, True), state.env_state),
            carry=jax.tree.map(lambda x: place(x, True), state.carry),
            params=jax.tree.map(lambda x: place(x, False), state.params),
            opt_state=jax.tree.map(lambda x: place(x, False), state.opt_state),
            key=place(state.key, False), update=place(state.update, False))

    def train_seeds(self, seeds) -> tuple[TrainState, UpdateMetrics]:
        """All seeds in one jitted, vmapped call; metrics are [num_seeds, num_updates]."""
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        return jax.jit(jax.vmap(self.train))(keys)


def make_train(config: Config, loss_fn: losses_lib.SegmentLoss | None = None) -> Trainer:
    """Build the A2C trainer; ``make_train(c).train`` is the ``train(key)`` function."""
    return Trainer(config, loss_fn)
