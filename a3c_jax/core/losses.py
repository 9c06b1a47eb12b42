"""Losses, pure and rlax-style, each returning ``(loss, metrics)``.

Array-level functions work on one unbatched segment ([T] time-major) and take the reduction
over time explicitly: ``"sum"`` accumulates gradients over the segment as the paper does,
``"mean"`` divides by its length T. Network-level losses (``actor_critic_segment_loss``) apply
a network to a [T, B] trajectory and combine the per-step terms of the B segments as
``cfg.combine`` says (``a3c_jax.core.combine``: sum, step-mean or env-mean; steps outside
until-terminal segments, ``traj.mask``, are skipped). Drivers (sync and async alike) take any
function with the signature of ``actor_critic_segment_loss`` so variants can be prototyped
without touching the package.

The actor-critic loss reads the policy through the distribution interface of
``a3c_jax.core.distributions`` (log_prob, entropy): categorical logits and the paper's diagonal
Gaussian share one code path. Recurrent networks use ``recurrent_actor_critic_segment_loss``.
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import chex
import jax
import jax.numpy as jnp

from a3c_jax.core import combine as combine_lib
from a3c_jax.core import distributions
from a3c_jax.core import returns as returns_lib
from a3c_jax.core.networks import reset_carry

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
    return distributions.Categorical(logits).entropy()


def actor_critic_terms(logp_a_t: jax.Array, entropy_t: jax.Array, v_t: jax.Array,
                       g_t: jax.Array, adv_t: jax.Array | None = None) -> dict:
    """The per-step terms of the A3C loss on one segment, before any reduction over t:

        policy_loss_t = -log pi(a_t|s_t) * A_t      value_loss_t = (G_t - V(s_t))^2
        entropy_t     = H(pi(.|s_t))

    with ``A_t = sg(G_t - V(s_t))`` unless ``adv_t`` is given (treated as constants), and
    ``G_t`` a constant too. Every actor-critic loss is these terms reduced (over t here,
    ``combine`` over a [T, B] batch in ``segment_loss_from_outputs``), then ``weigh``-ed.

    Args:
      logp_a_t: [T] log pi(a_t|s_t) of the actions taken (differentiable).
      entropy_t: [T] H(pi(.|s_t)).
      v_t: [T] values V(s_t).
      g_t: [T] bootstrapped returns.
      adv_t: optional [T] advantages (e.g. standardised ones).
    Returns:
      {"policy_loss", "value_loss", "entropy"}: each [T].
    """
    chex.assert_rank([logp_a_t, entropy_t, v_t, g_t], 1)
    chex.assert_equal_shape([logp_a_t, entropy_t, v_t, g_t])
    g_t = jax.lax.stop_gradient(g_t)
    adv_t = jax.lax.stop_gradient(g_t - v_t if adv_t is None else adv_t)
    return {"policy_loss": -logp_a_t * adv_t, "value_loss": jnp.square(g_t - v_t),
            "entropy": entropy_t}


def weigh(terms: dict, value_coef: float, entropy_coef: float) -> tuple[jax.Array, dict]:
    """(loss, metrics) from reduced terms: policy + value_coef value - entropy_coef entropy."""
    loss = (terms["policy_loss"] + value_coef * terms["value_loss"]
            - entropy_coef * terms["entropy"])
    return loss, {"total": loss, **terms}


def actor_critic_loss_logp(logp_a_t: jax.Array, entropy_t: jax.Array, v_t: jax.Array,
                           g_t: jax.Array, *, value_coef: float, entropy_coef: float,
                           reduction: Reduction = "sum", adv_t: jax.Array | None = None
                           ) -> tuple[jax.Array, dict]:
    """A3C loss for one segment from per-step log-probabilities and entropies, to be minimised.

        L = sum_t [ -log pi(a_t|s_t) * A_t  + value_coef * (G_t - V(s_t))^2
                    - entropy_coef * H(pi(.|s_t)) ]

    the terms of ``actor_critic_terms`` (``A_t = sg(G_t - V(s_t))`` unless ``adv_t`` is
    given); ``sum`` becomes a mean over t when ``reduction == "mean"``. Works for any
    distribution. Arguments as ``actor_critic_terms``.
    """
    terms = actor_critic_terms(logp_a_t, entropy_t, v_t, g_t, adv_t)
    return weigh({k: reduce_time(x, reduction) for k, x in terms.items()}, value_coef,
                 entropy_coef)


def actor_critic_loss_dist(dist_t: distributions.Distribution, v_t: jax.Array, a_t: jax.Array,
                           g_t: jax.Array, *, value_coef: float, entropy_coef: float,
                           reduction: Reduction = "sum", adv_t: jax.Array | None = None
                           ) -> tuple[jax.Array, dict]:
    """``actor_critic_loss_logp`` for a policy distribution with batch shape [T] (any of
    ``a3c_jax.core.distributions``; ``a_t`` the sampled, unclipped actions)."""
    return actor_critic_loss_logp(dist_t.log_prob(a_t), dist_t.entropy(), v_t, g_t,
                                  value_coef=value_coef, entropy_coef=entropy_coef,
                                  reduction=reduction, adv_t=adv_t)


def actor_critic_loss(logits_t: jax.Array, v_t: jax.Array, a_t: jax.Array, g_t: jax.Array,
                      *, value_coef: float, entropy_coef: float,
                      reduction: Reduction = "sum") -> tuple[jax.Array, dict]:
    """A3C loss for one segment (paper Algorithm S3), to be minimised; categorical policy.

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
    return actor_critic_loss_dist(distributions.Categorical(logits_t), v_t, a_t, g_t,
                                  value_coef=value_coef, entropy_coef=entropy_coef,
                                  reduction=reduction)


class LossConfig(NamedTuple):
    """The scalars a segment loss reads; built from a Config by ``loss_config``."""

    gamma: float
    gae_lambda: float
    value_coef: float
    entropy_coef: float
    combine: str = "sum"
    reward_scale: float = 1.0
    adv_norm: bool = False


def loss_config(config) -> LossConfig:
    """The loss scalars of a resolved ``Config`` (``defaults.resolve``)."""
    return LossConfig(gamma=config.gamma, gae_lambda=config.gae_lambda,
                      value_coef=config.value_coef, entropy_coef=config.entropy_coef,
                      combine=combine_lib.check(config.combine),
                      reward_scale=config.reward_scale, adv_norm=config.adv_norm)


SegmentLoss = Callable[..., tuple[jax.Array, dict]]


def normalize_advantages(adv: jax.Array, eps: float = 1e-8, mask: jax.Array | None = None
                         ) -> jax.Array:
    """Standardise advantages over all their entries (a segment's [T, B] batch; only the
    entries ``mask`` marks, if given)."""
    mu, sd = combine_lib.masked_mean(adv, mask), combine_lib.masked_std(adv, mask)
    return (adv - mu) / (sd + eps)


def segment_loss_from_outputs(policy_out, values: jax.Array, v_next: jax.Array, traj,
                              cfg: LossConfig) -> tuple[jax.Array, dict]:
    """The actor-critic loss of a [T, B] trajectory given the network's outputs on it.

    ``policy_out`` is logits [T, B, A] or a distribution with batch shape [T, B]; ``values``
    [T, B] = V(s_t); ``v_next`` [T, B] = V of each true next state (no gradient). Rewards are
    multiplied by ``cfg.reward_scale``; with ``cfg.adv_norm`` the advantages are standardised
    over the whole [T, B] batch. The per-step terms are ``actor_critic_terms`` of each segment
    (vmapped over B), each combined over the batch as ``cfg.combine`` says, then ``weigh``-ed:
    ``actor_critic_loss_logp`` summed over segments is this loss with ``combine="sum"``.
    """
    dist = distributions.as_distribution(policy_out)
    v_next = jax.lax.stop_gradient(v_next)
    reward = traj.reward * getattr(cfg, "reward_scale", 1.0)
    g = jax.vmap(returns_lib.nstep_returns, in_axes=(1, 1, 1, 1, None, None), out_axes=1)(
        reward, traj.terminated, traj.truncated, v_next, cfg.gamma, cfg.gae_lambda)
    g = jax.lax.stop_gradient(g)
    mask = getattr(traj, "mask", None)
    adv = None   # the terms' own sg(G_t - V(s_t)), unless standardised over the whole batch
    if getattr(cfg, "adv_norm", False):
        adv = normalize_advantages(jax.lax.stop_gradient(g - values), mask=mask)
    how = getattr(cfg, "combine", "sum")
    terms = jax.vmap(actor_critic_terms, in_axes=1, out_axes=1)(
        dist.log_prob(traj.action), dist.entropy(), values, g, adv)   # each [T, B]
    loss, metrics = weigh({k: combine_lib.combine(x, mask, how) for k, x in terms.items()},
                          cfg.value_coef, cfg.entropy_coef)
    return loss, {**metrics, **signals(dist, terms["entropy"], values, g, mask)}


def value_moments(v: jax.Array, g: jax.Array, mask: jax.Array | None = None) -> dict:
    """What the explained variance of V is pooled from (``curves.EV_MOMENTS``): over the
    entries ``mask`` marks (all without one), their number and the sums of G, G^2, G - V and
    (G - V)^2. Sums, so that a logged row adds its updates' and measures V on all their steps
    (``curves.explained_variance``)."""
    on = jnp.ones(g.shape, bool) if mask is None else jnp.broadcast_to(mask, g.shape)

    def total(x):   # masked entries may hold anything, NaN included
        return jnp.sum(jnp.where(on, x, 0.0))

    err = g - v
    return {"ev_count": total(jnp.ones_like(g)), "ev_return": total(g),
            "ev_return_sq": total(g * g), "ev_error": total(err),
            "ev_error_sq": total(err * err)}


def signals(dist, entropy_tn: jax.Array, v_tn: jax.Array, g_tn: jax.Array,
            mask: jax.Array | None) -> dict:
    """What shows a policy or a value function collapsing, logged with the losses (no
    gradient): the per-step mean entropy (whatever ``combine`` the loss takes, so it reads
    the same under every combine), the moments of V against the returns G [T, B] it regresses
    to that its explained variance is pooled from (``value_moments``), and for a Gaussian
    policy its mean sigma over steps and action dimensions (NaN for a categorical one)."""
    sg = jax.lax.stop_gradient
    out = {"entropy": combine_lib.combine(sg(entropy_tn), mask, "step-mean"),
           **value_moments(sg(v_tn), sg(g_tn), mask),
           "sigma": jnp.full((), jnp.nan, jnp.float32)}
    if isinstance(dist, distributions.DiagGaussian):
        sigma_tn = jnp.mean(jnp.sqrt(sg(dist.var)), axis=-1)
        out["sigma"] = combine_lib.combine(sigma_tn, mask, "step-mean")
    return out


def actor_critic_segment_loss(params, apply_fn: Callable, traj, cfg: LossConfig
                              ) -> tuple[jax.Array, dict]:
    """Actor-critic loss of a [T, B] trajectory (``rollout.Trajectory``), combined over its
    steps as ``cfg.combine`` says.

    ``apply_fn(params, obs) -> (policy, value)`` with the policy as logits or a distribution
    (``a3c_jax.core.distributions``). Bootstrap values V(final_obs) come from the same parameters
    and carry no gradient.
    """
    policy_out, values = apply_fn(params, traj.obs)             # [T, B, ...], [T, B]
    _, v_next = apply_fn(params, traj.final_obs)                # [T, B]
    return segment_loss_from_outputs(policy_out, values, v_next, traj, cfg)


def recurrent_forward(params, apply_fn: Callable, carry0, obs: jax.Array,
                      final_obs: jax.Array, done: jax.Array):
    """Re-run a recurrent actor-critic over a [T, B] segment from ``carry0`` [B, ...].

    ``apply_fn(params, carry, obs) -> (carry, (policy, value))``. The carry is reset after
    every step where ``done`` [T, B], exactly as in ``rollout.unroll``. Returns
    (policy [T, B, ...], values [T, B], v_next [T, B], carry at the segment end), where
    ``v_next`` is V of each true next state (``final_obs``) given the pre-reset carry.
    """

    def step(carry, xs):
        o, d = xs
        carry, (policy_out, value) = apply_fn(params, carry, o)
        return reset_carry(carry, d), (policy_out, value, carry)

    carry_end, (policy_out, values, carry_post) = jax.lax.scan(step, carry0, (obs, done))
    _, (_, v_next) = apply_fn(params, carry_post, final_obs)    # batched over [T, B]
    return policy_out, values, v_next, carry_end


def recurrent_actor_critic_segment_loss(params, apply_fn: Callable, traj, cfg: LossConfig
                                        ) -> tuple[jax.Array, dict]:
    """Actor-critic loss of a [T, B] ``rollout.Trajectory`` with its ``carry`` (combined as
    ``cfg.combine`` says).

    The LSTM is re-run over the segment from the carry stored at its start, under
    ``stop_gradient``: backpropagation through time is truncated at segment boundaries
    (t_max), as in the paper's A3C-LSTM.
    """
    carry0 = jax.lax.stop_gradient(jax.tree.map(lambda c: c[0], traj.carry))
    done = jnp.logical_or(traj.terminated, traj.truncated)
    policy_out, values, v_next, _ = recurrent_forward(params, apply_fn, carry0, traj.obs,
                                                      traj.final_obs, done)
    return segment_loss_from_outputs(policy_out, values, v_next, traj, cfg)
