"""An unroll of t_max environment steps with ``lax.scan``, shared by every driver.

The acting policy is a pure function ``policy(params, obs, key) -> action`` so that the
actor-critic (sampling from softmax) and the value-based methods (epsilon-greedy) share the
same unroll. Parameters are fixed during an unroll (the paper's thread-local theta').
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from a3c_jax.envs import Env, EnvState


class Trajectory(NamedTuple):
    """One segment, time-major: every field is [T, B, ...]."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array          # true next observation (before auto-reset)
    completed_return: jax.Array   # return of an episode that ended at this step, else 0
    completed_length: jax.Array


Policy = Callable[[object, jax.Array, jax.Array], jax.Array]


def unroll(env: Env, policy: Policy, params, env_state: EnvState, key: jax.Array,
           t_max: int) -> tuple[EnvState, Trajectory]:
    """Act for ``t_max`` steps in every environment of the batch; auto-resets inside."""

    def step(state: EnvState, step_key):
        act_key, env_key = jax.random.split(step_key)
        action = policy(params, state.obs, act_key)
        new_state, out = env.step(env_key, state, action)
        tr = Trajectory(obs=state.obs, action=action, reward=out.reward,
                        terminated=out.terminated, truncated=out.truncated,
                        final_obs=out.final_obs, completed_return=out.completed_return,
                        completed_length=out.completed_length)
        return new_state, tr

    return jax.lax.scan(step, env_state, jax.random.split(key, t_max))


def categorical_policy(apply_fn: Callable) -> Policy:
    """Sample a ~ softmax(logits) from an actor-critic ``apply_fn -> (logits, value)``."""

    def policy(params, obs, key):
        logits, _ = apply_fn(params, obs)
        return jax.random.categorical(key, logits)

    return policy


def episode_stats(traj: Trajectory) -> tuple[jax.Array, jax.Array]:
    """(sum of completed-episode returns, number of completed episodes) in a segment."""
    done = jnp.logical_or(traj.terminated, traj.truncated)
    return jnp.sum(traj.completed_return), jnp.sum(done)
