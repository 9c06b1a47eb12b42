"""Losses, pure and rlax-style, each returning ``(loss, metrics)``.

Array-level functions work on one unbatched segment ([T] time-major) and take the reduction
over time explicitly: ``"sum"`` accumulates gradients over the segment as the paper does,
``"mean"`` divides by its length T. Network-level losses (``actor_critic_segment_loss``) apply
a network to a [T, B] trajectory, vmap the array-level loss over the B environments and average
over them. Drivers (sync and async alike) take any function with the signature of
``actor_critic_segment_loss`` so variants can be prototyped without touching the package.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp

from a3c_jax import returns as returns_lib

Reduction = Literal["sum", "mean"]


def reduce_time(x_t: jax.Array, reduction: Reduction) -> jax.Array:
    """Reduce a [T] array over the segment: sum (the paper) or mean."""
    if reduction == "sum":
        return jnp.sum(x_t)
    if reduction == "mean":
        return jnp.mean(x_t)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy of softmax(logits) over the last axis."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def actor_critic_loss(logits_t: jax.Array, v_t: jax.Array, a_t: jax.Array, g_t: jax.Array,
                      *, value_coef: float, entropy_coef: float,
                      reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """A3C loss for one segment (paper Algorithm S3), to be minimised.

        L = sum_t [ -log pi(a_t|s_t) * sg(G_t - V(s_t))         (policy gradient, advantage)
                    + value_coef * (G_t - V(s_t))^2             (value regression)
                    - entropy_coef * H(pi(.|s_t)) ]             (entropy bonus beta * H)

    with ``sum`` replaced by a mean over t when ``reduction == "mean"``.
    The advantage is not differentiated: no gradient reaches V through the policy term.

    Args:
      logits_t: [T, A] policy logits.
      v_t: [T] values V(s_t).
      a_t: [T] int actions taken.
      g_t: [T] bootstrapped returns (treated as constants).
    Returns:
      (loss, metrics) with metrics ``policy_loss``, ``value_loss``, ``entropy`` (each reduced
      over the segment like the loss) and ``total``.
    """
    chex.assert_rank([logits_t, v_t, a_t, g_t], [2, 1, 1, 1])
    chex.assert_type([logits_t, v_t, g_t], float)
    chex.assert_type(a_t, int)
    g_t = jax.lax.stop_gradient(g_t)
    logp_t = jax.nn.log_softmax(logits_t)
    logp_a_t = jnp.take_along_axis(logp_t, a_t[:, None], axis=-1)[:, 0]
    adv_t = jax.lax.stop_gradient(g_t - v_t)
    policy_loss = reduce_time(-logp_a_t * adv_t, reduction)
    value_loss = reduce_time(jnp.square(g_t - v_t), reduction)
    entropy = reduce_time(categorical_entropy(logits_t), reduction)
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    metrics = {"total": loss, "policy_loss": policy_loss, "value_loss": value_loss,
               "entropy": entropy}
    return loss, metrics


class LossConfig(NamedTuple):
    """The scalars a segment loss reads; built from a Config by ``loss_config``."""

    gamma: float
    gae_lambda: float
    value_coef: float
    entropy_coef: float
    reduction: str


def loss_config(config) -> LossConfig:
    return LossConfig(gamma=config.gamma, gae_lambda=config.gae_lambda,
                      value_coef=config.value_coef, entropy_coef=config.entropy_coef,
                      reduction=config.reduction)


SegmentLoss = Callable[..., tuple[jax.Array, dict]]


def actor_critic_segment_loss(params, apply_fn: Callable, traj, cfg: LossConfig
                              ) -> tuple[jax.Array, dict]:
    """Actor-critic loss of a [T, B] trajectory (``rollout.Trajectory``), averaged over B.

    Bootstrap values V(final_obs) come from the same parameters and carry no gradient.
    """
    logits, values = apply_fn(params, traj.obs)                 # [T, B, A], [T, B]
    _, v_next = apply_fn(params, traj.final_obs)                # [T, B]
    v_next = jax.lax.stop_gradient(v_next)
    g = jax.vmap(returns_lib.nstep_returns, in_axes=(1, 1, 1, 1, None, None), out_axes=1)(
        traj.reward, traj.terminated, traj.truncated, v_next, cfg.gamma, cfg.gae_lambda)
    per_env = jax.vmap(
        lambda lg, v, a, gt: actor_critic_loss(
            lg, v, a, gt, value_coef=cfg.value_coef, entropy_coef=cfg.entropy_coef,
            reduction=cfg.reduction),
        in_axes=(1, 1, 1, 1))
    loss_b, metrics_b = per_env(logits, values, traj.action, g)
    return jnp.mean(loss_b), jax.tree.map(jnp.mean, metrics_b)
