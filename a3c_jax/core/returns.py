"""Bootstrapped returns over one segment, rlax-style: pure, unbatched, time-major [T].

A segment of ``T = t_max`` steps may span episode ends. For step ``t`` the caller gives the
reward ``r_t``, the flags ``terminated_t`` and ``truncated_t`` of that transition, and
``v_next_t`` = V(s_{t+1}) where s_{t+1} is the *true* next state, i.e. the value of gymnax's
``final_observation`` (before any automatic reset). Then, walking backwards,

    G_t = r_t + gamma * (1 - terminated_t) * [ cut_t ? v_next_t : (1 - lambda) v_next_t + lambda G_{t+1} ]

with ``cut_t = truncated_t or t == T - 1``. With lambda = 1 this is the paper's n-step return
(Algorithm S3: R = V(s_t) at the segment end, R <- r_i + gamma R backwards, R = 0 at a terminal
state); a truncated step bootstraps from the value of its final observation instead of reading
across the reset. Lambda < 1 gives TD(lambda) returns, from which GAE advantages follow.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def nstep_returns(r_t: jax.Array, terminated_t: jax.Array, truncated_t: jax.Array,
                  v_next_t: jax.Array, gamma: float, lambda_: float = 1.0) -> jax.Array:
    """Bootstrapped (lambda-)returns for one segment.

    Args:
      r_t: [T] float rewards.
      terminated_t: [T] bool, the transition ended the MDP (no bootstrap).
      truncated_t: [T] bool, a time limit cut the episode here (bootstrap from v_next_t).
      v_next_t: [T] float, V of the true next state (gymnax final_observation).
      gamma: discount.
      lambda_: mixing parameter; 1.0 gives n-step returns to the segment end.

    Returns:
      [T] float returns G_t.
    """
    chex.assert_rank([r_t, terminated_t, truncated_t, v_next_t], 1)
    chex.assert_equal_shape([r_t, terminated_t, truncated_t, v_next_t])
    T = r_t.shape[0]
    discount_t = gamma * (1.0 - terminated_t.astype(r_t.dtype))
    cut_t = jnp.logical_or(truncated_t, jnp.arange(T) == T - 1)
    lambda_t = jnp.where(cut_t, 0.0, lambda_).astype(r_t.dtype)

    def body(g_next, xs):
        r, disc, lam, v_next = xs
        g = r + disc * ((1.0 - lam) * v_next + lam * g_next)
        return g, g

    _, g_t = jax.lax.scan(body, jnp.zeros((), r_t.dtype),
                          (r_t, discount_t, lambda_t, v_next_t), reverse=True)
    return g_t


def nstep_q_returns(r_t: jax.Array, terminated_t: jax.Array, truncated_t: jax.Array,
                    q_next_t: jax.Array, gamma: float) -> jax.Array:
    """n-step Q-learning returns (Algorithm S2): bootstrap from max_a Q(s_{t+1}, a; theta^-).

    ``q_next_t`` is [T, A], the target network's action values at the true next state.
    """
    chex.assert_rank(q_next_t, 2)
    return nstep_returns(r_t, terminated_t, truncated_t, jnp.max(q_next_t, axis=-1), gamma)


def one_step_targets(r_t: jax.Array, terminated_t: jax.Array, v_next_t: jax.Array,
                     gamma: float) -> jax.Array:
    """One-step TD targets y_t = r_t + gamma (1 - terminated_t) v_next_t.

    Truncation needs no flag here: ``v_next_t`` is already the value of the true next state.
    """
    chex.assert_equal_shape([r_t, terminated_t, v_next_t])
    return r_t + gamma * (1.0 - terminated_t.astype(r_t.dtype)) * v_next_t
