"""What one update reports: ``Metrics``, the same scalars for every method and driver.

The losses give their terms and the collapse signals (``losses.signals``); the gradient's
global norm is taken here, before any clipping, so a gradient that clipping hides still
shows. The value-based methods have no policy and no V: ``policy_loss``, ``entropy`` and
``sigma`` are NaN there and the moments of V zero (blank in metrics.csv).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from a3c_jax.core import curves


class Metrics(NamedTuple):
    """What one update reports (scalars). Value-based methods put their TD loss in
    ``value_loss``, leave ``policy_loss``, ``entropy`` and ``sigma`` NaN and the moments of
    V zero. Workers pack these in this order (``interface.StepLayout``) and their
    ``UpdateRecord`` holds them in the same order."""

    return_sum: jax.Array     # sum of returns of the episodes completed in the segment
    episodes: jax.Array       # number of episodes completed in the segment
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array        # per-step mean H(pi(.|s_t)), whatever the loss' combine
    total_loss: jax.Array
    grad_norm: jax.Array      # global L2 norm of the gradient, before clipping
    sigma: jax.Array          # Gaussian policies: mean standard deviation; NaN otherwise
    ev_count: jax.Array       # V against the returns G it regresses to (curves.EV_MOMENTS):
    ev_return: jax.Array      # steps, sum G, sum G^2, sum (G - V), sum (G - V)^2; a row's
    ev_return_sq: jax.Array   # explained variance pools them (curves.explained_variance)
    ev_error: jax.Array
    ev_error_sq: jax.Array


def update_metrics(is_value: bool, episode_stats: tuple, m: dict, grads) -> Metrics:
    """The ``Metrics`` of one update from its (return sum, episodes), the loss' metrics dict
    ``m`` and the unclipped gradient. A custom loss that gives no signal leaves it NaN (the
    moments of V zero: no step scored)."""
    nan = jnp.full((), jnp.nan, jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    ret_sum, n_done = episode_stats
    norm = optax.tree.norm(grads)
    if is_value:
        return Metrics(ret_sum, n_done, nan, m["q_loss"], nan, m["total"], norm, nan,
                       *(zero for _ in curves.EV_MOMENTS))
    return Metrics(ret_sum, n_done, m["policy_loss"], m["value_loss"], m["entropy"],
                   m["total"], norm, m.get("sigma", nan),
                   *(jnp.asarray(m.get(f, zero), jnp.float32) for f in curves.EV_MOMENTS))
