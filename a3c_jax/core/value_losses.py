"""Value-based losses, pure and rlax-style: one-step Q-learning (paper Algorithm 1), one-step
SARSA, n-step Q-learning (supplementary Algorithm S2), each returning ``(loss, metrics)``.

Names follow rlax: ``q_tm1`` [T, A] are Q(s_t, .; theta) at the observations acted on,
``a_tm1`` [T] the actions taken there, ``r_t`` / ``terminated_t`` / ``truncated_t`` [T] the
transition's reward and flags, and ``q_t`` [T, A] the *target* network's values
Q(s_{t+1}, .; theta^-) at the true next state (gymnax ``final_observation``, before any
reset). Targets carry no gradient. Each loss is the squared TD error (y_t - Q(s_t, a_t))^2
reduced over the segment like the actor-critic loss ("sum" = the paper's accumulated dtheta).
Segment losses take ``(params, target_params, apply_fn, traj, cfg)`` and combine the squared
TD errors of the B segments of a [T, B] ``rollout.Trajectory`` as ``cfg.combine`` says
(``a3c_jax.core.combine``; steps outside until-terminal segments, ``traj.mask``, are skipped).
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from a3c_jax.core import combine as combine_lib
from a3c_jax.core import returns as returns_lib
from a3c_jax.core.losses import LossConfig, Reduction, reduce_time


def _td_loss(q_tm1: jax.Array, a_tm1: jax.Array, y_t: jax.Array, reduction: Reduction
             ) -> tuple[jax.Array, dict]:
    q_a = jnp.take_along_axis(q_tm1, a_tm1[:, None], axis=-1)[:, 0]
    td_t = jax.lax.stop_gradient(y_t) - q_a
    loss = reduce_time(jnp.square(td_t), reduction)
    metrics = {"total": loss, "q_loss": loss, "td_abs": jnp.mean(jnp.abs(td_t)),
               "q_mean": jnp.mean(q_a)}
    return loss, metrics


def _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t):
    chex.assert_rank([q_tm1, a_tm1, r_t, terminated_t, q_t], [2, 1, 1, 1, 2])
    chex.assert_type([q_tm1, r_t, q_t], float)
    chex.assert_type(a_tm1, int)
    chex.assert_equal_shape([q_tm1, q_t])
    chex.assert_equal_shape([a_tm1, r_t, terminated_t])


def q_learning_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array,
                    terminated_t: jax.Array, q_t: jax.Array, *, gamma: float,
                    reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """One-step Q-learning (paper Algorithm 1), to be minimised.

        y_t = r_t + gamma (1 - terminated_t) max_a Q(s_{t+1}, a; theta^-)
        L   = sum_t (y_t - Q(s_t, a_t; theta))^2          (mean over t with "mean")

    A truncated step needs no flag: ``q_t`` is already evaluated at the pre-reset state.

    Args:
      q_tm1: [T, A] Q(s_t, .; theta).
      a_tm1: [T] int actions taken.
      r_t: [T] rewards.
      terminated_t: [T] bool, the transition ended the MDP.
      q_t: [T, A] Q(s_{t+1}, .; theta^-) at the true next state.
    Returns:
      (loss, metrics) with ``q_loss`` (= the loss), ``td_abs`` and ``q_mean`` (means over t).
    """
    _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t)
    y_t = returns_lib.one_step_targets(r_t, terminated_t, jnp.max(q_t, axis=-1), gamma)
    return _td_loss(q_tm1, a_tm1, y_t, reduction)


def sarsa_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
               q_t: jax.Array, a_t: jax.Array, *, gamma: float,
               reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """One-step SARSA, to be minimised.

        y_t = r_t + gamma (1 - terminated_t) Q(s_{t+1}, a_{t+1}; theta^-)

    ``a_t`` [T] is the action taken at the true next state s_{t+1}. Where the episode
    continues this is the next action actually taken; where it was truncated the caller
    supplies an action drawn from the behaviour policy at the final observation; where it
    terminated the value is ignored (see ``rollout.unroll`` with a SARSA actor).
    """
    _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t)
    chex.assert_equal_shape([a_tm1, a_t])
    chex.assert_type(a_t, int)
    q_next = jnp.take_along_axis(q_t, a_t[:, None], axis=-1)[:, 0]
    y_t = returns_lib.one_step_targets(r_t, terminated_t, q_next, gamma)
    return _td_loss(q_tm1, a_tm1, y_t, reduction)


def nstep_q_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
                 truncated_t: jax.Array, q_t: jax.Array, *, gamma: float,
                 reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """n-step Q-learning (paper supplementary Algorithm S2), to be minimised.

        R_t = r_t + gamma (1 - terminated_t) [ cut_t ? max_a Q(s_{t+1}, a; theta^-) : R_{t+1} ]
        L   = sum_t (R_t - Q(s_t, a_t; theta))^2

    with ``cut_t`` = truncated at t, or the last step of the segment (``returns.nstep_q_returns``).
    """
    _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t)
    chex.assert_equal_shape([r_t, truncated_t])
    g_t = returns_lib.nstep_q_returns(r_t, terminated_t, truncated_t, q_t, gamma)
    return _td_loss(q_tm1, a_tm1, g_t, reduction)


def _q_values(params, target_params, apply_fn: Callable, traj):
    """Q(s_t, .; theta) [T, B, A] and Q(final_obs_t, .; theta^-) [T, B, A] without gradient."""
    q = apply_fn(params, traj.obs)
    q_next = jax.lax.stop_gradient(apply_fn(target_params, traj.final_obs))
    return q, q_next


def _combined_td_loss(q, y, traj, cfg: LossConfig) -> tuple[jax.Array, dict]:
    """Squared TD errors (y - Q(s_t, a_t))^2 [T, B] combined as ``cfg.combine`` says."""
    q_a = jnp.take_along_axis(q, traj.action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    td = jax.lax.stop_gradient(y) - q_a
    mask = getattr(traj, "mask", None)
    loss = combine_lib.combine(jnp.square(td), mask, getattr(cfg, "combine", "sum"))
    metrics = {"total": loss, "q_loss": loss,
               "td_abs": combine_lib.masked_mean(jnp.abs(td), mask),
               "q_mean": combine_lib.masked_mean(q_a, mask)}
    return loss, metrics


def q_learning_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                            ) -> tuple[jax.Array, dict]:
    """One-step Q-learning loss of a [T, B] ``rollout.Trajectory`` (``q_learning_loss`` per
    step, combined as ``cfg.combine`` says)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    y = returns_lib.one_step_targets(traj.reward, traj.terminated, jnp.max(q_next, axis=-1),
                                     cfg.gamma)
    return _combined_td_loss(q, y, traj, cfg)


def sarsa_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                       ) -> tuple[jax.Array, dict]:
    """One-step SARSA loss of a [T, B] trajectory that also carries ``next_action`` [T, B]
    (the action at each true next state)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    q_sel = jnp.take_along_axis(q_next, traj.next_action[..., None].astype(jnp.int32),
                                axis=-1)[..., 0]
    y = returns_lib.one_step_targets(traj.reward, traj.terminated, q_sel, cfg.gamma)
    return _combined_td_loss(q, y, traj, cfg)


def nstep_q_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                         ) -> tuple[jax.Array, dict]:
    """n-step Q-learning loss of a [T, B] ``rollout.Trajectory`` (Algorithm S2 per segment)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    g = jax.vmap(returns_lib.nstep_q_returns, in_axes=(1, 1, 1, 1, None), out_axes=1)(
        traj.reward, traj.terminated, traj.truncated, q_next, cfg.gamma)
    return _combined_td_loss(q, g, traj, cfg)
