"""Value-based losses, pure and rlax-style: one-step Q-learning (paper Algorithm 1), one-step
SARSA, n-step Q-learning (supplementary Algorithm S2), each returning ``(loss, metrics)``.

Names follow rlax: ``q_tm1`` [T, A] are Q(s_t, .; theta) at the observations acted on,
``a_tm1`` [T] the actions taken there, ``r_t`` / ``terminated_t`` / ``truncated_t`` [T] the
transition's reward and flags, and ``q_t`` [T, A] the *target* network's values
Q(s_{t+1}, .; theta^-) at the true next state (gymnax ``final_observation``, before any
reset). Targets carry no gradient. Each loss is the squared TD error (y_t - Q(s_t, a_t))^2
reduced over the segment like the actor-critic loss ("sum" = the paper's accumulated dtheta).
Each method's per-step TD errors are one function on one segment (``q_learning_td``,
``sarsa_td``, ``nstep_q_td``); the rlax-style losses reduce them over t, and the segment
losses, which take ``(params, target_params, apply_fn, traj, cfg)``, vmap them over the B
segments of a [T, B] ``rollout.Trajectory`` and combine the squared TD errors as
``cfg.combine`` says (``a3c_jax.core.combine``; steps outside until-terminal segments,
``traj.mask``, are skipped).
"""

from __future__ import annotations

import functools
from typing import Callable

import chex
import jax
import jax.numpy as jnp

from a3c_jax.core import combine as combine_lib
from a3c_jax.core import returns as returns_lib
from a3c_jax.core.losses import LossConfig, Reduction, reduce_time


def _td(q_tm1: jax.Array, a_tm1: jax.Array, y_t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(TD errors sg(y_t) - Q(s_t, a_t) [T], Q(s_t, a_t) [T])."""
    q_a = jnp.take_along_axis(q_tm1, a_tm1[:, None], axis=-1)[:, 0]
    return jax.lax.stop_gradient(y_t) - q_a, q_a


def _td_loss(td: tuple[jax.Array, jax.Array], reduction: Reduction
             ) -> tuple[jax.Array, dict]:
    """The squared TD errors of one segment reduced over t, with their metrics."""
    td_t, q_a = td
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


def q_learning_td(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array,
                  terminated_t: jax.Array, q_t: jax.Array, *, gamma: float
                  ) -> tuple[jax.Array, jax.Array]:
    """One-step Q-learning's per-step TD errors (paper Algorithm 1) on one segment:

        y_t = r_t + gamma (1 - terminated_t) max_a Q(s_{t+1}, a; theta^-)
        td_t = sg(y_t) - Q(s_t, a_t; theta)

    A truncated step needs no flag: ``q_t`` is already evaluated at the pre-reset state.

    Args:
      q_tm1: [T, A] Q(s_t, .; theta).
      a_tm1: [T] int actions taken.
      r_t: [T] rewards.
      terminated_t: [T] bool, the transition ended the MDP.
      q_t: [T, A] Q(s_{t+1}, .; theta^-) at the true next state.
    Returns:
      (td_t [T], Q(s_t, a_t) [T]).
    """
    _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t)
    y_t = returns_lib.one_step_targets(r_t, terminated_t, jnp.max(q_t, axis=-1), gamma)
    return _td(q_tm1, a_tm1, y_t)


def q_learning_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array,
                    terminated_t: jax.Array, q_t: jax.Array, *, gamma: float,
                    reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """One-step Q-learning (paper Algorithm 1), to be minimised: the TD errors of
    ``q_learning_td`` (same arguments), squared and reduced over the segment,

        L = sum_t (y_t - Q(s_t, a_t; theta))^2          (mean over t with "mean")

    Returns (loss, metrics) with ``q_loss`` (= the loss), ``td_abs`` and ``q_mean`` (means
    over t).
    """
    return _td_loss(q_learning_td(q_tm1, a_tm1, r_t, terminated_t, q_t, gamma=gamma),
                    reduction)


def sarsa_td(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
             q_t: jax.Array, a_t: jax.Array, *, gamma: float) -> tuple[jax.Array, jax.Array]:
    """One-step SARSA's per-step TD errors on one segment:

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
    return _td(q_tm1, a_tm1, y_t)


def sarsa_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
               q_t: jax.Array, a_t: jax.Array, *, gamma: float,
               reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """One-step SARSA, to be minimised: ``sarsa_td``'s errors squared, reduced over t."""
    return _td_loss(sarsa_td(q_tm1, a_tm1, r_t, terminated_t, q_t, a_t, gamma=gamma),
                    reduction)


def nstep_q_td(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
               truncated_t: jax.Array, q_t: jax.Array, *, gamma: float
               ) -> tuple[jax.Array, jax.Array]:
    """n-step Q-learning's per-step TD errors (paper supplementary Algorithm S2):

        R_t = r_t + gamma (1 - terminated_t) [ cut_t ? max_a Q(s_{t+1}, a; theta^-) : R_{t+1} ]
        td_t = sg(R_t) - Q(s_t, a_t; theta)

    with ``cut_t`` = truncated at t, or the last step of the segment (``returns.nstep_q_returns``).
    """
    _check_q_args(q_tm1, a_tm1, r_t, terminated_t, q_t)
    chex.assert_equal_shape([r_t, truncated_t])
    g_t = returns_lib.nstep_q_returns(r_t, terminated_t, truncated_t, q_t, gamma)
    return _td(q_tm1, a_tm1, g_t)


def nstep_q_loss(q_tm1: jax.Array, a_tm1: jax.Array, r_t: jax.Array, terminated_t: jax.Array,
                 truncated_t: jax.Array, q_t: jax.Array, *, gamma: float,
                 reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """n-step Q-learning (Algorithm S2), to be minimised: ``nstep_q_td``'s errors squared,

        L = sum_t (R_t - Q(s_t, a_t; theta))^2
    """
    return _td_loss(nstep_q_td(q_tm1, a_tm1, r_t, terminated_t, truncated_t, q_t,
                               gamma=gamma), reduction)


def _q_values(params, target_params, apply_fn: Callable, traj):
    """Q(s_t, .; theta) [T, B, A] and Q(final_obs_t, .; theta^-) [T, B, A] without gradient."""
    q = apply_fn(params, traj.obs)
    q_next = jax.lax.stop_gradient(apply_fn(target_params, traj.final_obs))
    return q, q_next


def _combined_td_loss(td_fn: Callable, args: tuple, traj, cfg: LossConfig
                      ) -> tuple[jax.Array, dict]:
    """``td_fn(*args, gamma)`` on each of the B segments (args [T, B, ...], vmapped over B),
    its squared TD errors [T, B] combined as ``cfg.combine`` says."""
    td, q_a = jax.vmap(functools.partial(td_fn, gamma=cfg.gamma), in_axes=1, out_axes=1)(*args)
    mask = getattr(traj, "mask", None)
    loss = combine_lib.combine(jnp.square(td), mask, getattr(cfg, "combine", "sum"))
    metrics = {"total": loss, "q_loss": loss,
               "td_abs": combine_lib.masked_mean(jnp.abs(td), mask),
               "q_mean": combine_lib.masked_mean(q_a, mask)}
    return loss, metrics


def _actions(a: jax.Array) -> jax.Array:
    return a.astype(jnp.int32)


def q_learning_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                            ) -> tuple[jax.Array, dict]:
    """One-step Q-learning loss of a [T, B] ``rollout.Trajectory`` (``q_learning_td`` per
    segment, combined as ``cfg.combine`` says)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    return _combined_td_loss(q_learning_td, (q, _actions(traj.action), traj.reward,
                                             traj.terminated, q_next), traj, cfg)


def sarsa_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                       ) -> tuple[jax.Array, dict]:
    """One-step SARSA loss of a [T, B] trajectory that also carries ``next_action`` [T, B]
    (the action at each true next state; ``sarsa_td`` per segment)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    return _combined_td_loss(sarsa_td, (q, _actions(traj.action), traj.reward,
                                        traj.terminated, q_next, _actions(traj.next_action)),
                             traj, cfg)


def nstep_q_segment_loss(params, target_params, apply_fn: Callable, traj, cfg: LossConfig
                         ) -> tuple[jax.Array, dict]:
    """n-step Q-learning loss of a [T, B] ``rollout.Trajectory`` (``nstep_q_td`` per
    segment: Algorithm S2)."""
    q, q_next = _q_values(params, target_params, apply_fn, traj)
    return _combined_td_loss(nstep_q_td, (q, _actions(traj.action), traj.reward,
                                          traj.terminated, traj.truncated, q_next), traj, cfg)
