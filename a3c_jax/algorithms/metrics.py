"""What one update reports: ``Metrics``, the same scalars for every method and driver.

The losses give their terms and the collapse signals (``losses.signals``); the gradient's
global norm is taken here, before any clipping, so a gradient that clipping hides still
shows. The value-based methods have no policy and no V: ``policy_loss``, ``entropy``,
``explained_variance`` and ``sigma`` are NaN there (blank in metrics.csv).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Metrics(NamedTuple):
    """What one update reports (scalars). Value-based methods put their TD loss in
    ``value_loss`` and leave ``policy_loss``, ``entropy``, ``explained_variance`` and
    ``sigma`` NaN. Workers pack these in this order (``interface.StepLayout``) and their
    ``UpdateRecord`` holds them in the same order."""

    return_sum: jax.Array     # sum of returns of the episodes completed in the segment
    episodes: jax.Array       # number of episodes completed in the segment
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array        # per-step mean H(pi(.|s_t)), whatever the loss' combine
    total_loss: jax.Array
    grad_norm: jax.Array      # global L2 norm of the gradient, before clipping
    explained_variance: jax.Array   # 1 - Var[G - V] / Var[G] on the update's returns
    sigma: jax.Array          # Gaussian policies: mean standard deviation; NaN otherwise


def update_metrics(is_value: bool, episode_stats: tuple, m: dict, grads) -> Metrics:
    """The ``Metrics`` of one update from its (return sum, episodes), the loss' metrics dict
    ``m`` and the unclipped gradient. A custom loss that gives no signal leaves it NaN."""
    nan = jnp.full((), jnp.nan, jnp.float32)
    ret_sum, n_done = episode_stats
    norm = optax.tree.norm(grads)
    if is_value:
        return Metrics(ret_sum, n_done, nan, m["q_loss"], nan, m["total"], norm, nan, nan)
    return Metrics(ret_sum, n_done, m["policy_loss"], m["value_loss"], m["entropy"],
                   m["total"], norm, m.get("explained_variance", nan), m.get("sigma", nan))
