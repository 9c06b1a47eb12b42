"""The unit of work every actor-critic driver repeats: unroll t_max steps, then differentiate.

``make_segment_grad`` closes over the static pieces (env, network, loss) and returns a pure
function of (params, env_state, key). The sync A2C driver calls it inside its scan; each
asynchronous worker calls its jitted flat-vector wrapper (``make_flat_worker_step``) once per
update.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from a3c_jax import rollout

# Order of the packed metrics vector returned by a flat worker step.
PACKED_METRICS = ("return_sum", "episodes", "policy_loss", "value_loss", "entropy", "total")


def make_segment_grad(env, policy: Callable, apply_fn: Callable, loss_fn: Callable, loss_cfg,
                      t_max: int) -> Callable:
    def segment_grad(params, env_state, key):
        env_state, traj = rollout.unroll(env, policy, params, env_state, key, t_max)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, apply_fn, traj, loss_cfg)
        return grads, env_state, traj, metrics

    return segment_grad


def clip_by_global_norm(grads, max_norm: float):
    """optax's global-norm clipping, applied where no optimiser state is at hand."""
    if max_norm <= 0:
        return grads
    return optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())[0]


def make_flat_worker_step(segment_grad: Callable, unravel: Callable, max_grad_norm: float
                          ) -> Callable:
    """(flat_params, env_state, key) -> (flat_grad ++ packed metrics, env_state, key).

    One jitted call per update; the parameter vector and the returned gradient are flat so
    the host copies one buffer each way (per-call cost grows with the number of leaves).
    """

    def step(flat_params, env_state, key):
        key, k_unroll = jax.random.split(key)
        grads, env_state, traj, metrics = segment_grad(unravel(flat_params), env_state,
                                                       k_unroll)
        grads = clip_by_global_norm(grads, max_grad_norm)
        flat_grad, _ = ravel_pytree(grads)
        ret_sum, n_done = rollout.episode_stats(traj)
        packed = jnp.stack([ret_sum, n_done.astype(jnp.float32), metrics["policy_loss"],
                            metrics["value_loss"], metrics["entropy"], metrics["total"]])
        return jnp.concatenate([flat_grad, packed.astype(flat_grad.dtype)]), env_state, key

    return step
