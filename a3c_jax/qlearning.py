"""The paper's value-based methods: async one-step Q-learning, one-step SARSA, n-step Q-learning.

Each runs on the same worker threads and shared store as A3C (``a3c_jax.async_driver``), with
target parameters theta^- in the store. A worker, until the global counter T reaches the
budget:
  1. claims t_max * E steps of T; if the claim [T_before, T_after) crosses a multiple of
     ``target_interval``, it copies theta^- <- theta (``store.update_target``). Claims are
     disjoint intervals of T, so each boundary is crossed by exactly one claim: one copy per
     boundary, whatever the interleaving;
  2. reads snapshots of theta and theta^-;
  3. calls its jitted step: act epsilon-greedily for t_max steps (epsilon is an argument, so
     annealing never retraces), compute the method's loss (``losses.q_learning_loss``,
     ``sarsa_loss``, ``nstep_q_loss``) and its gradient;
  4. writes the update into the shared store (shared RMSProp by default), once per segment.

I_AsyncUpdate is ``t_max``. For the one-step methods theta is fixed within a segment, so the
gradient of the summed one-step losses equals the paper's per-step accumulation of dtheta.
Like A3C, a segment has a fixed length and may cross an episode end (targets are cut there);
the paper instead also writes at every episode end.

Exploration (``a3c_jax.exploration``). The actor is the environment: each environment a
worker drives has its own final epsilon, drawn from {0.1, 0.01, 0.5} w.p. {0.4, 0.3, 0.3}
(from the worker's key) unless ``config.eps_final >= 0``, and its epsilon anneals linearly
from 1 to it over ``eps_anneal_steps`` steps *of that environment* (the worker's updates times
t_max). With the paper's E = 1 this is exactly its per-thread rule (per-worker env steps, one
final epsilon per worker). For E > 1 it keeps the async W x E run and the sync W*E-env run
identically distributed — same number of epsilons, same schedule in global steps T — which a
per-worker rule would not (it would anneal E times sooner in T and draw W epsilons instead of
W*E). Epsilon is held fixed within a segment and passed to the jitted step as data.

SARSA's next action. The target needs a_{t+1}, the action actually taken at s_{t+1}. The
SARSA actor (``unroll_sarsa``) therefore chooses each action one step early: after stepping the
environment it draws the action at the true next state (``final_obs``) and, with the same key,
at the observation it continues from (the reset one after an episode end). Where the episode
continues the two states and draws coincide, so the recorded ``next_action`` is exactly the
action executed next — also across segment boundaries, because the pending action is carried
in the actor state. Where a time limit truncated the episode, ``next_action`` is a draw from
the behaviour policy at the final state, never executed: an unbiased sample of the on-policy
bootstrap. Where the MDP terminated it is ignored (the target is r).

With ``config.stop_return > 0`` a run ends at the first update where the smoothed return
(episode-weighted, over the last ``stop_window`` env steps) reaches it (``async_driver.StopMonitor``, the same for every async method).

``metrics.csv`` keeps the A3C schema: ``value_loss`` and ``total_loss`` hold the Q loss,
``policy_loss`` and ``entropy`` are empty (NaN).

Synchronous counterpart: ``make_sync_q_train(config)`` (``QTrainer``) runs any of the three
methods over ``num_envs`` vmapped environments the way ``a2c.Trainer`` runs A2C: one pure
``train(key)``, a ``lax.scan`` over updates, target parameters copied inside the scan every
``target_interval`` env steps; epsilon follows the same per-environment rule as the async
workers. ``run_sync_q(config)`` is its shell (rows are labelled ``<algo>_sync``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from a3c_jax import exploration, learner, losses as losses_lib, networks, optim, rollout
from a3c_jax.config import VALUE_ALGOS, Config
from a3c_jax.envs import Env, EnvState
from a3c_jax.async_driver import FlatParams
from a3c_jax.runner import RunResult

SEGMENT_LOSSES: dict[str, Callable] = {
    "q1": losses_lib.q_learning_segment_loss,
    "sarsa": losses_lib.sarsa_segment_loss,
    "nq": losses_lib.nstep_q_segment_loss,
}

# Defaults for the value-based methods, tuned on CartPole-v1 with W = 2, E = 1 (seeds 0-6):
# lr 1e-3 (SARSA needs it: 3e-3 took 0.4-0.9M steps), target copies every 1k steps (2k-10k
# was slower), and a short epsilon anneal of 25k steps per environment (50k-100k was slower:
# the smoothed return of the behaviour policy waits for epsilon). Applied by ``run_q`` and
# ``run_sync_q`` through ``with_q_defaults``.
_Q_TUNED: dict[str, Any] = {"lr": 1e-3, "target_interval": 1_000, "eps_anneal_steps": 25_000}
Q_DEFAULTS: dict[str, dict[str, Any]] = {"q1": _Q_TUNED, "sarsa": _Q_TUNED, "nq": _Q_TUNED}


def with_q_defaults(config: Config) -> Config:
    """Apply ``Q_DEFAULTS[config.algo]`` to every field still at its ``Config`` default.

    ``Config``'s defaults are tuned for the actor-critic; a field the user set to anything
    else is kept. (A field explicitly set to the ``Config`` default cannot be told apart from
    an unset one and is overridden too; pass a different value to opt out.)
    """
    base = {f.name: f.default for f in dataclasses.fields(Config)}
    changes = {k: v for k, v in Q_DEFAULTS.get(config.algo, {}).items()
               if getattr(config, k) == base[k]}
    return config.replace(**changes) if changes else config


# --- acting --------------------------------------------------------------------------------

class SarsaTrajectory(NamedTuple):
    """``rollout.Trajectory`` plus ``next_action`` [T, B]: the action at each true next state."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    completed_return: jax.Array
    completed_length: jax.Array
    next_action: jax.Array


@struct.dataclass
class SarsaActorState:
    env: EnvState
    action: jax.Array   # [B] int32 action chosen for env.obs; -1 = not chosen yet


def unroll_sarsa(env: Env, policy: rollout.Policy, params, state: SarsaActorState, key,
                 t_max: int) -> tuple[SarsaActorState, SarsaTrajectory]:
    """``rollout.unroll`` for SARSA: records the action taken at each true next state.

    See the module docstring for why the draw at ``final_obs`` is the next action taken.
    """
    k_first, k_steps = jax.random.split(key)
    first = policy(params, state.env.obs, k_first)
    action0 = jnp.where(state.action >= 0, state.action, first)
    both = jax.vmap(policy, in_axes=(None, 0, None))

    def step(carry, step_key):
        env_state, action = carry
        k_act, k_env = jax.random.split(step_key)
        new_env, out = env.step(k_env, env_state, action)
        a_final, a_cont = both(params, jnp.stack([out.final_obs, new_env.obs]), k_act)
        done = jnp.logical_or(out.terminated, out.truncated)
        tr = SarsaTrajectory(obs=env_state.obs, action=action, reward=out.reward,
                             terminated=out.terminated, truncated=out.truncated,
                             final_obs=out.final_obs, completed_return=out.completed_return,
                             completed_length=out.completed_length, next_action=a_final)
        return (new_env, jnp.where(done, a_cont, a_final)), tr

    (env_state, pending), traj = jax.lax.scan(step, (state.env, action0),
                                              jax.random.split(k_steps, t_max))
    return SarsaActorState(env=env_state, action=pending), traj


class Actor(NamedTuple):
    """How one method acts: ``init(key) -> actor_state`` and
    ``unroll(params, epsilon, actor_state, key) -> (actor_state, traj)``."""

    init: Callable
    unroll: Callable


def make_actor(algo: str, env: Env, apply_fn: Callable, t_max: int) -> Actor:
    if algo == "sarsa":
        def init(key):
            return SarsaActorState(env=env.reset(key),
                                   action=jnp.full((env.num_envs,), -1, jnp.int32))

        def unroll(params, epsilon, state, key):
            return unroll_sarsa(env, exploration.epsilon_greedy(apply_fn, epsilon), params,
                                state, key, t_max)
    else:
        init = env.reset

        def unroll(params, epsilon, state, key):
            return rollout.unroll(env, exploration.epsilon_greedy(apply_fn, epsilon), params,
                                  state, key, t_max)
    return Actor(init, unroll)


def make_q_segment_grad(actor: Actor, apply_fn: Callable, loss_fn: Callable, loss_cfg
                        ) -> Callable:
    """(params, target_params, actor_state, key, epsilon) -> (grads, actor_state, traj,
    metrics): the unit of work shared by the async workers and the sync trainer."""

    def segment_grad(params, target_params, actor_state, key, epsilon):
        actor_state, traj = actor.unroll(params, epsilon, actor_state, key)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, target_params, apply_fn, traj, loss_cfg)
        return grads, actor_state, traj, metrics

    return segment_grad


def _check_algo(config: Config) -> None:
    if config.algo not in VALUE_ALGOS:
        raise ValueError(f"algo: the value-based drivers run {', '.join(VALUE_ALGOS)}, got "
                         f"{config.algo!r}")


def actor_final_epsilons(config: Config, key, num_actors: int) -> jax.Array:
    """[num_actors] final epsilons of a run whose root key is ``key`` (``jax.random.key(seed)``).

    Actor i is environment i of the run: async worker w drives actors w*E .. w*E + E - 1, the
    sync trainer actors 0 .. N - 1. An async W x E run and a sync W*E-env run with the same
    seed therefore explore with the same epsilons, so their comparison is not confounded by
    the draw (with W*E = 2, half the seeds draw an actor at 0.5).
    """
    return exploration.final_epsilon(config, jax.random.fold_in(key, _EPS_STREAM),
                                     (num_actors,))


_EPS_STREAM = 0x3E95  # fold_in tag: the final-epsilon draw's own stream of the root key


def epsilon_host(step: int, eps_final, anneal_steps: int) -> np.ndarray:
    """``exploration.epsilon_at`` on the host (float32, shaped like ``eps_final``), without a
    device call per update."""
    eps_final = np.asarray(eps_final, np.float32)
    return (1.0 + (eps_final - 1.0) * np.float32(min(step / anneal_steps, 1.0))).astype(
        np.float32)


# --- asynchronous driver -------------------------------------------------------------------

def claim_and_update_target(store, n: int, budget: int, interval: int
                            ) -> tuple[int, int] | None:
    """Claim ``n`` steps of T; copy theta^- <- theta for each multiple of ``interval`` in
    (T_before, T_after]. Claims are disjoint intervals of T (the counter is exact), so each
    boundary belongs to exactly one claim: one copy per boundary under any interleaving."""
    claim = store.claim_steps(n, budget)
    if claim is not None:
        before, after = claim
        for _ in range(after // interval - before // interval):
            store.update_target()
    return claim


class AsyncQ(FlatParams):
    """Async one-step Q, one-step SARSA or n-step Q for one config (``AsyncAlgorithm``)."""

    with_target = True

    def __init__(self, config: Config, loss_fn: losses_lib.SegmentLoss | None = None):
        config.validate()
        _check_algo(config)
        self.config = config
        self.env = Env(config.env, config.envs_per_worker)
        self.network = networks.make_q_network(config, self.env)
        self.apply_fn = self.network.apply
        self.loss_fn = loss_fn or SEGMENT_LOSSES[config.algo]
        self.actor = make_actor(config.algo, self.env, self.apply_fn, config.t_max)
        self.segment_grad = make_q_segment_grad(self.actor, self.apply_fn, self.loss_fn,
                                                losses_lib.loss_config(config))
        flat, self._unravel = ravel_pytree(self.init_params(jax.random.key(0)))
        self.num_params = int(flat.shape[0])
        self.step = jax.jit(self._make_flat_step())
        self.reset = jax.jit(self.actor.init)
        self._compiled = None

    def _make_flat_step(self) -> Callable:
        """(flat_params, flat_target, actor_state, key, epsilon) ->
        (flat_grad ++ packed metrics, actor_state, key); packed as ``learner.PACKED_METRICS``."""
        unravel, max_norm = self._unravel, self.config.max_grad_norm

        def step(flat_params, flat_target, actor_state, key, epsilon):
            key, k_unroll = jax.random.split(key)
            grads, actor_state, traj, m = self.segment_grad(
                unravel(flat_params), unravel(flat_target), actor_state, k_unroll, epsilon)
            flat_grad, _ = ravel_pytree(learner.clip_by_global_norm(grads, max_norm))
            ret_sum, n_done = rollout.episode_stats(traj)
            packed = jnp.stack([ret_sum, n_done.astype(jnp.float32), jnp.nan, m["q_loss"],
                                jnp.nan, m["total"]])
            return (jnp.concatenate([flat_grad, packed.astype(flat_grad.dtype)]), actor_state,
                    key)

        return step

    def init_params(self, key):
        return self.network.init(key, jnp.zeros((1,) + self.env.obs_shape, jnp.float32))

    def final_epsilon(self, seed: int, worker: int) -> np.ndarray:
        """[E] final epsilons of one worker's environments (actors w*E .. w*E + E - 1)."""
        c = self.config
        eps = actor_final_epsilons(c, jax.random.key(seed), c.workers * c.envs_per_worker)
        E = c.envs_per_worker
        return np.asarray(eps[worker * E:(worker + 1) * E])

    def compile(self) -> None:
        """Compile the step and reset before any thread starts."""
        if self._compiled is not None:
            return
        k_env, k_run = self.worker_keys(0, 0)
        actor_state = self.reset(k_env)
        flat = jnp.zeros((self.num_params,), jnp.float32)
        eps = np.ones((self.config.envs_per_worker,), np.float32)
        self._compiled = self.step.lower(flat, flat, actor_state, k_run, eps).compile()
        jax.block_until_ready(self._compiled(flat, flat, actor_state, k_run, eps))

    def worker_loop(self, worker: int, seed: int, store, clock: Callable[[], float],
                    records: list) -> Callable:
        from a3c_jax.async_driver import UpdateRecord

        c = self.config
        k_env, k_run = self.worker_keys(seed, worker)
        eps_final = self.final_epsilon(seed, worker)
        n_steps = c.steps_per_update
        interval = c.target_interval
        P = self.num_params
        step = self._compiled

        def loop(stop):
            actor_state, key = self.reset(k_env), k_run
            local = store.new_local_state()
            u = 0
            while not stop.is_set():
                claim = claim_and_update_target(store, n_steps, c.total_steps, interval)
                if claim is None:
                    break
                before, after = claim
                eps = epsilon_host(u * c.t_max, eps_final, c.eps_anneal_steps)
                snap = store.read()
                target = store.read_target()
                out, actor_state, key = step(snap.params, target, actor_state, key, eps)
                out = np.asarray(out)
                rec = store.apply(out[:P], snap, local, t=before)
                m = out[P:]
                records.append(UpdateRecord(
                    worker, u, after, clock(), rec.version_read, rec.version_written,
                    rec.staleness, float(m[0]), float(m[1]), float(m[2]), float(m[3]),
                    float(m[4]), float(m[5])))
                u += 1

        return loop


def run_q(config: Config, write: bool = True) -> RunResult:
    """Run async q1 / sarsa / nq (with ``Q_DEFAULTS`` for unset fields) and write the run."""
    from a3c_jax.async_driver import run_async

    _check_algo(config)
    return run_async(AsyncQ(with_q_defaults(config)), write=write)


# --- synchronous driver --------------------------------------------------------------------

@struct.dataclass
class QTrainState:
    params: Any
    target_params: Any
    opt_state: Any
    actor_state: Any
    eps_final: jax.Array  # [N] final epsilon of each environment
    key: jax.Array
    update: jax.Array     # int32 number of updates done


class QTrainer:
    """Synchronous q1 / sarsa / nq over ``num_envs`` vmapped environments; pure and jittable.

    The zero-staleness control for the async value-based methods: the same actor, loss and
    optimiser; one update per t_max steps of all N environments (gradient averaged over them).
    """

    def __init__(self, config: Config, loss_fn: losses_lib.SegmentLoss | None = None):
        config.validate()
        _check_algo(config)
        if config.optimizer == "rmsprop_local":
            raise ValueError("optimizer rmsprop_local only applies to asynchronous runs")
        self.config = config
        self.env = Env(config.env, config.num_envs)
        self.network = networks.make_q_network(config, self.env)
        self.apply_fn = self.network.apply
        self.loss_fn = loss_fn or SEGMENT_LOSSES[config.algo]
        self.actor = make_actor(config.algo, self.env, self.apply_fn, config.t_max)
        self.grad = make_q_segment_grad(self.actor, self.apply_fn, self.loss_fn,
                                        losses_lib.loss_config(config))
        self.steps_per_update = config.t_max * config.num_envs
        self.num_updates = config.total_steps // self.steps_per_update
        self.optimizer = optim.make_optimizer(config, self.num_updates)

    def init_params(self, key):
        return self.network.init(key, jnp.zeros((1,) + self.env.obs_shape, jnp.float32))

    def init(self, key) -> QTrainState:
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.init_params(k_params)
        return QTrainState(
            params=params, target_params=params, opt_state=self.optimizer.init(params),
            actor_state=self.actor.init(k_env),
            eps_final=actor_final_epsilons(self.config, key, self.config.num_envs),
            key=k_run, update=jnp.zeros((), jnp.int32))

    def update(self, state: QTrainState):
        from a3c_jax.a2c import UpdateMetrics

        c = self.config
        key, k_unroll = jax.random.split(state.key)
        eps = exploration.epsilon_at(state.update * c.t_max, state.eps_final,
                                     c.eps_anneal_steps)
        grads, actor_state, traj, m = self.grad(state.params, state.target_params,
                                                state.actor_state, k_unroll, eps)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = state.update + 1
        crossed = (n * self.steps_per_update) // c.target_interval != (
            (n - 1) * self.steps_per_update) // c.target_interval
        target = jax.tree.map(lambda p, t: jnp.where(crossed, p, t), params,
                              state.target_params)
        new_state = QTrainState(params=params, target_params=target, opt_state=opt_state,
                                actor_state=actor_state, eps_final=state.eps_final, key=key,
                                update=n)
        ret_sum, n_done = rollout.episode_stats(traj)
        nan = jnp.full((), jnp.nan, jnp.float32)
        metrics = UpdateMetrics(
            env_steps=n * self.steps_per_update,
            episode_return=jnp.where(n_done > 0, ret_sum / jnp.maximum(n_done, 1), jnp.nan),
            episodes=n_done, policy_loss=nan, value_loss=m["q_loss"], entropy=nan,
            total_loss=m["total"])
        return new_state, metrics

    def run_chunk(self, state: QTrainState, num_updates: int):
        return jax.lax.scan(lambda s, _: self.update(s), state, None, length=num_updates)

    def train(self, key):
        """The whole budget in one scan; jit it, or vmap it over seeds."""
        return self.run_chunk(self.init(key), self.num_updates)

    def train_seeds(self, seeds):
        keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
        return jax.jit(jax.vmap(self.train))(keys)


def make_sync_q_train(config: Config, loss_fn: losses_lib.SegmentLoss | None = None
                      ) -> QTrainer:
    """The synchronous value-based trainer; ``make_sync_q_train(c).train`` is ``train(key)``."""
    return QTrainer(config, loss_fn)


def run_sync_q(config: Config, write: bool = True) -> RunResult:
    """Train every seed with the synchronous trainer (``Q_DEFAULTS`` for unset fields), one
    seed after another so wall-clock times are per seed; rows are labelled ``<algo>_sync``.
    Stops a seed early once ``config.stop_return`` is reached."""
    from a3c_jax.runner import _progress, _row_from_chunk, finish_run, reached

    _check_algo(config)
    config = with_q_defaults(config)
    trainer = make_sync_q_train(config)
    label = f"{config.algo}_sync"
    steps = config.log_interval or max(config.total_steps // 200, 1)
    chunk = max(steps // trainer.steps_per_update, 1)
    rows: list[dict] = []
    params: dict[int, Any] = {}
    interrupted = False
    compiled: dict[int, Callable] = {}

    def chunk_fn(state, n):  # compiled ahead of the clock, once per chunk length
        if n not in compiled:
            compiled[n] = jax.jit(trainer.run_chunk, static_argnums=1).lower(state, n).compile()
        return compiled[n]

    bar = _progress(config, label)
    try:
        for seed in config.seeds:
            bar.reset()
            state = jax.jit(trainer.init)(jax.random.key(seed))
            chunk_fn(state, chunk)
            done, seed_rows = 0, []
            t0 = time.perf_counter()
            try:
                while done < trainer.num_updates:
                    n = min(chunk, trainer.num_updates - done)
                    state, m = chunk_fn(state, n)(state)
                    m = jax.device_get(jax.tree.map(lambda x: x[None], m))
                    done += n
                    row = _row_from_chunk(config, seed, m, 0, time.perf_counter() - t0)
                    seed_rows.append(dict(row, algo=label))
                    bar.update(n * trainer.steps_per_update)
                    if config.stop_return and reached(seed_rows, seed, config):
                        break
            finally:
                rows += seed_rows
                params[seed] = jax.device_get(state.params)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return finish_run(config, rows, params, interrupted, write)
