"""An unroll of t_max environment steps with ``lax.scan``, shared by every driver.

The acting policy is a pure function ``policy(params, obs, key) -> action`` so that the
actor-critic (sampling from its distribution) and the value-based methods (epsilon-greedy)
share the same unroll. Parameters are fixed during an unroll (the paper's thread-local theta').

Recurrent actor-critics act with ``policy(params, carry, obs, key) -> (carry, action)``;
``unroll_recurrent`` keeps the carry in a ``RecurrentState`` next to the environments, resets
it wherever an episode ends (so the next step starts from a fresh carry), and records the carry
that entered every step, from which the loss re-runs the network over the segment.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from a3c_jax import distributions, networks
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


class RecurrentTrajectory(NamedTuple):
    """``Trajectory`` plus ``carry``: the recurrent carry entering each step, [T, B, ...]
    (zeros at the first step of an episode)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    completed_return: jax.Array
    completed_length: jax.Array
    carry: Any


class RecurrentState(NamedTuple):
    """What a recurrent actor carries between segments: its environments and its carry
    ([B, ...], already reset where an episode just began)."""

    env: EnvState
    carry: Any


RecurrentPolicy = Callable[[object, Any, jax.Array, jax.Array], tuple[Any, jax.Array]]


def unroll_recurrent(env: Env, policy: RecurrentPolicy, params, state: RecurrentState,
                     key: jax.Array, t_max: int) -> tuple[RecurrentState, RecurrentTrajectory]:
    """``unroll`` for a recurrent policy: the carry is reset after every step that ends an
    episode (terminated or truncated) and kept across segments otherwise."""
    def step(s: RecurrentState, step_key):
        act_key, env_key = jax.random.split(step_key)
        carry, action = policy(params, s.carry, s.env.obs, act_key)
        new_env, out = env.step(env_key, s.env, action)
        done = jnp.logical_or(out.terminated, out.truncated)
        tr = RecurrentTrajectory(
            obs=s.env.obs, action=action, reward=out.reward, terminated=out.terminated,
            truncated=out.truncated, final_obs=out.final_obs,
            completed_return=out.completed_return, completed_length=out.completed_length,
            carry=s.carry)
        return RecurrentState(new_env, networks.reset_carry(carry, done)), tr

    return jax.lax.scan(step, state, jax.random.split(key, t_max))


def sampling_policy(apply_fn: Callable) -> Policy:
    """Sample a ~ pi(.|s) from an actor-critic ``apply_fn -> (policy, value)`` whose policy is
    logits or a distribution (``a3c_jax.distributions``); continuous samples are unclipped."""

    def policy(params, obs, key):
        policy_out, _ = apply_fn(params, obs)
        return distributions.as_distribution(policy_out).sample(key)

    return policy


def recurrent_sampling_policy(apply_fn: Callable) -> RecurrentPolicy:
    """``sampling_policy`` for ``apply_fn(params, carry, obs) -> (carry, (policy, value))``."""

    def policy(params, carry, obs, key):
        carry, (policy_out, _) = apply_fn(params, carry, obs)
        return carry, distributions.as_distribution(policy_out).sample(key)

    return policy


def categorical_policy(apply_fn: Callable) -> Policy:
    """Sample a ~ softmax(logits) from an actor-critic ``apply_fn -> (logits, value)``."""

    def policy(params, obs, key):
        logits, _ = apply_fn(params, obs)
        return jax.random.categorical(key, logits)

    return policy


def episode_stats(traj) -> tuple[jax.Array, jax.Array]:
    """(sum of completed-episode returns, number of completed episodes) in a segment."""
    done = jnp.logical_or(traj.terminated, traj.truncated)
    return jnp.sum(traj.completed_return), jnp.sum(done)
