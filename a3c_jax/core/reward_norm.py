"""Return-based reward normalisation: each reward divided by the running standard deviation
of the discounted return (what Stable-Baselines3's VecNormalize and most PPO codebases do).

Each environment keeps its running discounted return R <- gamma R + r, reset after an
episode ends; the mean and variance of R over every step seen so far are running statistics
(count, mean, var, merged batch by batch with ``normalization.merge_stats``); the loss sees

    r' = clip(r / sqrt(var + eps), -clip, clip)

The mean is not subtracted (a shift of the rewards would change the task). Why: the
actor-critic sums its value loss (G - V)^2 over the segment through a torso it shares with
the policy; with returns in the hundreds the value error dominates the torso's gradient and
the policy barely moves, unless the reward happens to be scaled well. Dividing by the scale
of the return makes the value targets O(1) whatever the units of the reward.

The state (``ReturnNorm``) belongs to an actor (``rollout.ActorState.ret_norm``): the sync
driver keeps one for its N environments, each asynchronous worker one for its E (not shared
through the store: every worker's estimate converges to the same scale). Steps outside a
segment (mask False, ``--segments until-terminal``) change nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from a3c_jax.core import combine, normalization

CLIP = 10.0
EPS = 1e-8


class ReturnNorm(NamedTuple):
    """Running discounted returns [B] and the statistics of the returns seen (scalars)."""

    ret: jax.Array
    count: jax.Array
    mean: jax.Array
    var: jax.Array


def init(num_envs: int) -> ReturnNorm:
    prior = normalization.init_stats(())
    return ReturnNorm(ret=jnp.zeros((num_envs,), jnp.float32), count=prior["count"],
                      mean=prior["mean"], var=prior["var"])


def scale(state: ReturnNorm) -> jax.Array:
    """The factor rewards are multiplied by: 1 / sqrt(var + eps)."""
    return jax.lax.rsqrt(state.var + EPS)


def normalize(state: ReturnNorm, r_t: jax.Array, done_t: jax.Array, gamma: float,
              mask_t: jax.Array | None = None, clip: float = CLIP
              ) -> tuple[ReturnNorm, jax.Array]:
    """(new state, normalised rewards [T, B]) for a segment's rewards ``r_t`` [T, B].

    ``done_t`` [T, B]: an episode ended at this step (its running return restarts at 0).
    The statistics include this segment's returns before its rewards are scaled.
    """
    chex.assert_rank([r_t, done_t], 2)
    chex.assert_equal_shape([r_t, done_t])
    valid = jnp.ones(r_t.shape, bool) if mask_t is None else mask_t

    def step(ret, xs):
        r, d, v = xs
        new = jnp.where(v, gamma * ret + r, ret)
        return jnp.where(jnp.logical_and(v, d), 0.0, new), new

    ret_end, rets = jax.lax.scan(step, state.ret, (r_t, done_t, valid))
    mean = combine.masked_mean(rets, valid)
    batch = {"count": jnp.sum(valid.astype(jnp.float32)), "mean": mean,
             "var": combine.masked_mean(jnp.square(rets - mean), valid)}
    merged = normalization.merge_stats(
        {"count": state.count, "mean": state.mean, "var": state.var}, batch)
    new_state = ReturnNorm(ret=ret_end, count=merged["count"], mean=merged["mean"],
                           var=merged["var"])
    return new_state, jnp.clip(r_t * scale(new_state), -clip, clip)


def normalize_traj(state: ReturnNorm, traj, gamma: float):
    """``normalize`` on a ``rollout.Trajectory``: (new state, traj with normalised rewards)."""
    done = jnp.logical_or(traj.terminated, traj.truncated)
    new_state, reward = normalize(state, traj.reward, done, gamma, traj.mask)
    return new_state, traj._replace(reward=reward)
