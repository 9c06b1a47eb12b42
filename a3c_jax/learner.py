"""The unit of work every actor-critic driver repeats: unroll t_max steps, then differentiate.

``make_segment_grad`` closes over the static pieces (env, network, loss) and returns a pure
function of (params, env_state, key). The sync A2C driver calls it inside its scan; each
asynchronous worker calls its jitted flat-vector wrapper (``make_flat_worker_step``) once per
update. For a recurrent network the state is a ``rollout.RecurrentState`` (environments and
carry) instead of the bare environment state.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from a3c_jax import normalization, rollout

# Order of the packed metrics vector returned by a flat worker step.
PACKED_METRICS = ("return_sum", "episodes", "policy_loss", "value_loss", "entropy", "total")


def make_segment_grad(env, policy: Callable, apply_fn: Callable, loss_fn: Callable, loss_cfg,
                      t_max: int, recurrent: bool = False) -> Callable:
    unroll = rollout.unroll_recurrent if recurrent else rollout.unroll

    def segment_grad(params, env_state, key):
        env_state, traj = unroll(env, policy, params, env_state, key, t_max)
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, apply_fn, traj, loss_cfg)
        return grads, env_state, traj, metrics

    return segment_grad


def clip_by_global_norm(grads, max_norm: float):
    """optax's global-norm clipping, applied where no optimiser state is at hand."""
    if max_norm <= 0:
        return grads
    return optax.clip_by_global_norm(max_norm).update(grads, optax.EmptyState())[0]


def stats_slice(params) -> tuple[int, int] | None:
    """Where the observation statistics (``normalization.COLLECTION``) sit in the flat
    parameter vector of ``params``, as [start, stop); None when there are none."""
    if not normalization.has_stats(params):
        return None
    marked = jax.tree.map(jnp.zeros_like, params)
    marked = normalization.set_stats(
        marked, jax.tree.map(jnp.ones_like, normalization.get_stats(params)))
    idx = jnp.nonzero(ravel_pytree(marked)[0])[0]
    start, stop = int(idx[0]), int(idx[-1]) + 1
    if stop - start != idx.shape[0]:
        raise ValueError("observation statistics are not contiguous in the flat parameters")
    return start, stop


def make_flat_worker_step(segment_grad: Callable, unravel: Callable, max_grad_norm: float,
                          stats: tuple[int, int] | None = None) -> Callable:
    """(flat_params, env_state, key) -> (flat_grad ++ [stats] ++ packed metrics, env_state, key).

    One jitted call per update; the parameter vector and the returned gradient are flat so
    the host copies one buffer each way (per-call cost grows with the number of leaves).
    With ``stats`` = ``stats_slice(params)``, the statistics of the segment's observations
    alone follow the gradient (``stop - start`` entries, the layout of that slice) for the
    worker to merge into the store's current statistics; the gradient is zero there.
    """

    def step(flat_params, env_state, key):
        key, k_unroll = jax.random.split(key)
        params = unravel(flat_params)
        grads, env_state, traj, metrics = segment_grad(params, env_state, k_unroll)
        grads = clip_by_global_norm(grads, max_grad_norm)
        flat_grad, _ = ravel_pytree(grads)
        ret_sum, n_done = rollout.episode_stats(traj)
        packed = jnp.stack([ret_sum, n_done.astype(jnp.float32), metrics["policy_loss"],
                            metrics["value_loss"], metrics["entropy"], metrics["total"]])
        parts = [flat_grad]
        if stats is not None:
            own = normalization.get_stats(params)
            parts.append(ravel_pytree(normalization.batch_stats(own, traj.obs))[0])
        parts.append(packed.astype(flat_grad.dtype))
        return jnp.concatenate(parts), env_state, key

    return step
