"""The synchronous driver: every method over N lockstep environments, one jitted program.

``make_train(config) -> SyncTrainer``; ``trainer.train(key)`` is one pure function
(``lax.scan`` over updates; the N environments are vmapped inside the env adapter) that can be
jitted and ``vmap``-ped over seeds (``trainer.train_seeds``) and over the learning rate
(``train(key, lr=...)`` with a traced ``lr``). For progress and wall-clock curves,
``run_chunk`` scans a fixed number of updates per call.

It serves A2C (the zero-staleness control of A3C) and the synchronous counterparts of the
value-based methods (one update per t_max steps of all N environments, the gradient averaged
over them; target parameters copied inside the scan every ``target_interval`` env steps;
epsilon per environment as on the asynchronous workers). With the paper's until-terminal
segments (``--segments until-terminal``) an environment whose segment ended waits for the
others until the update; the run makes ``total_steps // (t_max N)`` updates and counts the env
steps actually taken (``TrainState.env_steps``: the curves' x axis, the target-copy clock).
The pieces are the ``Algorithm``'s
(``a3c_jax.algorithms.interface``), the same functions the asynchronous workers call; the optimiser is
``optim.make_optax`` of the run's ``OptSpec``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.core import curves, optim, placement, rollout
from a3c_jax.config.schema import Config, Resolved
from a3c_jax.config.defaults import resolve


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    actor: rollout.ActorState
    key: jax.Array
    update: jax.Array           # int32 number of updates done
    target_params: Any = None   # value-based methods: theta^-
    env_steps: Any = None       # int32 env steps taken (fewer than updates * t_max * N with
                                # until-terminal segments)
    nonfinite: Any = 0          # int32 updates skipped in a row for a non-finite gradient
    nonfinite_total: Any = 0    # int32 updates skipped in all


class UpdateMetrics(NamedTuple):
    """Per-update curve entries (each a scalar per update)."""

    env_steps: jax.Array        # env steps after this update
    episode_return: jax.Array   # mean return of episodes completed in this update, NaN if none
    episodes: jax.Array         # number of episodes completed in this update
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    total_loss: jax.Array
    grad_norm: jax.Array            # before clipping
    sigma: jax.Array                # NaN but for a Gaussian policy
    ev_count: jax.Array             # the moments of V (curves.EV_MOMENTS; 0 for value methods)
    ev_return: jax.Array
    ev_return_sq: jax.Array
    ev_error: jax.Array
    ev_error_sq: jax.Array


def update_metrics(m: algorithm.Metrics, env_steps) -> UpdateMetrics:
    mean_ret = jnp.where(m.episodes > 0, m.return_sum / jnp.maximum(m.episodes, 1), jnp.nan)
    return UpdateMetrics(env_steps=env_steps, episode_return=mean_ret, episodes=m.episodes,
                         policy_loss=m.policy_loss, value_loss=m.value_loss,
                         entropy=m.entropy, total_loss=m.total_loss, grad_norm=m.grad_norm,
                         sigma=m.sigma, **{f: getattr(m, f) for f in curves.EV_MOMENTS})


class SyncTrainer:
    """The pure pieces of a synchronous run for one resolved config; methods are jittable."""

    def __init__(self, config: Resolved, loss_fn: Callable | None = None):
        if not config.is_sync:
            raise ValueError(f"backend: {config.algo} on backend {config.backend!r} runs "
                             "asynchronous workers; the synchronous driver runs algo a2c, or any "
                             "method with backend 'sync'")
        self.config = config
        self.algo = algorithm.make_algorithm(config, config.num_envs, loss_fn)
        self.env = self.algo.env
        self.spec = optim.OptSpec.from_config(config)
        self.steps_per_update = config.t_max * config.num_envs
        self.num_updates = config.total_steps // self.steps_per_update
        self.optimizer = self.make_optimizer()
        self.env_device, self.learner_device = placement.placement(
            config.env, jax.devices(), jax.devices("cpu"))

    def device_scope(self):
        """The context the run's programs are built and run in. When the games must stay on
        the host (Atari with a GPU as the default device: ``core.placement``) the whole program
        runs on the host CPU for now; a learner on the GPU fed by host games is not built."""
        if placement.split(self.env_device, self.learner_device):
            return jax.default_device(self.env_device)
        return contextlib.nullcontext()

    def make_optimizer(self, lr=None) -> optax.GradientTransformation:
        """The run's optax chain; ``lr`` (possibly traced) replaces the configured one."""
        spec = self.spec if lr is None else dataclasses.replace(self.spec, lr=lr)
        return optim.make_optax(spec, self.steps_per_update)

    def init(self, key) -> TrainState:
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.algo.init_params(k_params)
        eps = (self.algo.actor_epsilons(self.config, key, self.config.num_envs)
               if self.algo.is_value else None)
        return TrainState(params=params, opt_state=self.optimizer.init(params),
                          actor=self.algo.init_actor(k_env, eps), key=k_run,
                          update=jnp.zeros((), jnp.int32),
                          target_params=params if self.algo.with_target else None,
                          env_steps=jnp.zeros((), jnp.int32),
                          nonfinite=jnp.zeros((), jnp.int32),
                          nonfinite_total=jnp.zeros((), jnp.int32))

    def update(self, state: TrainState, optimizer=None) -> tuple[TrainState, UpdateMetrics]:
        optimizer = optimizer or self.optimizer
        key, k_unroll = jax.random.split(state.key)
        grads, actor, traj, m = self.algo.segment_grad(state.params, state.target_params,
                                                       state.actor, k_unroll)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # a non-finite gradient is never applied: params and optimiser state stay as they
        # were (selected after the step, so a finite update's arithmetic is unchanged)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        params, opt_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b),
                                         (params, opt_state), (state.params, state.opt_state))
        skipped = 1 - finite.astype(jnp.int32)
        params = self.algo.post_update(params, traj)
        n = state.update + 1
        before = state.env_steps
        after = before + self.algo.steps_taken(traj)
        target = state.target_params
        if target is not None:
            interval = self.config.target_interval
            crossed = after // interval != before // interval
            target = jax.tree.map(lambda p, t: jnp.where(crossed, p, t), params, target)
        new_state = TrainState(params=params, opt_state=opt_state, actor=actor, key=key,
                               update=n, target_params=target, env_steps=after,
                               nonfinite=(state.nonfinite + skipped) * skipped,
                               nonfinite_total=state.nonfinite_total + skipped)
        return new_state, update_metrics(m, after)

    def run_chunk(self, state: TrainState, num_updates: int, lr=None
                  ) -> tuple[TrainState, UpdateMetrics]:
        """``num_updates`` updates in one scan (``num_updates`` must be static under jit)."""
        optimizer = None if lr is None else self.make_optimizer(lr)
        return jax.lax.scan(lambda s, _: self.update(s, optimizer), state, None,
                            length=num_updates)

    def train(self, key, lr=None) -> tuple[TrainState, UpdateMetrics]:
        """The whole budget in one scan; jit it, or vmap it over seeds (and learning
        rates: ``lr`` may be traced)."""
        state = self.init(key)
        if lr is not None:
            state = state.replace(opt_state=self.make_optimizer(lr).init(state.params))
        return self.run_chunk(state, self.num_updates, lr)

    def train_seeds(self, seeds) -> tuple[TrainState, UpdateMetrics]:
        """All seeds in one jitted, vmapped call; metrics are [num_seeds, num_updates]."""
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        return jax.jit(jax.vmap(self.train))(keys)

    def train_grid(self, seeds, lrs) -> UpdateMetrics:
        """Every (learning rate, seed) pair in one jitted call, vmapped over both; metrics
        are [num_lrs, num_seeds, num_updates]."""
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        over_seeds = jax.vmap(lambda k, lr: self.train(k, lr)[1], in_axes=(0, None))
        over_lrs = jax.jit(jax.vmap(over_seeds, in_axes=(None, 0)))
        return jax.device_get(over_lrs(keys, jnp.asarray(lrs, jnp.float32)))

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

        return TrainState(
            params=jax.tree.map(lambda x: place(x, False), state.params),
            opt_state=jax.tree.map(lambda x: place(x, False), state.opt_state),
            actor=jax.tree.map(lambda x: place(x, True), state.actor),
            key=place(state.key, False), update=place(state.update, False),
            target_params=jax.tree.map(lambda x: place(x, False), state.target_params),
            env_steps=place(state.env_steps, False),
            nonfinite=place(state.nonfinite, False),
            nonfinite_total=place(state.nonfinite_total, False))


def make_train(config: Config, loss_fn: Callable | None = None) -> SyncTrainer:
    """The synchronous trainer of ``config`` (resolved here if it is not yet);
    ``make_train(c).train`` is the ``train(key)`` function."""
    return SyncTrainer(resolve(config), loss_fn)
