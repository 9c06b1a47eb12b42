"""Running observation statistics, pure: (mean, var, count) merged batch by batch.

The statistics live in the network's variables as a non-trainable collection ``"obs_norm"``
(``{"mean": [*obs_shape], "var": [*obs_shape], "count": []}``): the network reads them to
normalise its input (``networks.normalize_obs``), so they are saved and loaded with the
parameters and any ``apply`` of a checkpoint normalises the way training did. They carry no
gradient; the drivers update them from each segment's observations after the gradient step
(``update_params``), never through the optimiser (whose step is exactly zero on them).

Merging uses the parallel form of Welford's algorithm (Chan et al.): for a batch of n samples
with mean m_b and variance v_b,

    delta = m_b - mean;  N = count + n
    mean' = mean + delta n / N
    var'  = (var count + v_b n + delta^2 count n / N) / N
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

COLLECTION = "obs_norm"
INIT_COUNT = 1e-4   # the prior (mean 0, var 1) weighs as much as 1e-4 samples


def init_stats(shape: tuple[int, ...]) -> dict:
    return {"mean": jnp.zeros(shape, jnp.float32), "var": jnp.ones(shape, jnp.float32),
            "count": jnp.full((), INIT_COUNT, jnp.float32)}


def batch_stats(stats: dict, batch: jax.Array, mask: jax.Array | None = None) -> dict:
    """The statistics of ``batch`` [..., *obs_shape] alone (leading axes are samples), in the
    layout of ``stats``; with ``mask`` (the leading axes' shape, bool) only the samples it
    marks count (steps outside until-terminal segments)."""
    event_ndim = stats["mean"].ndim
    x = batch.reshape((-1,) + batch.shape[batch.ndim - event_ndim:]).astype(jnp.float32)
    if mask is None:
        return {"mean": jnp.mean(x, axis=0), "var": jnp.var(x, axis=0),
                "count": jnp.asarray(x.shape[0], jnp.float32)}
    w = mask.reshape((-1,) + (1,) * event_ndim).astype(jnp.float32)
    n = jnp.sum(w)
    mean = jnp.sum(w * x, axis=0) / jnp.maximum(n, 1.0)
    var = jnp.sum(w * jnp.square(x - mean), axis=0) / jnp.maximum(n, 1.0)
    return {"mean": mean, "var": var, "count": n}


def update_stats(stats: dict, batch: jax.Array, mask: jax.Array | None = None) -> dict:
    """Merge the samples of ``batch`` [..., *obs_shape] (leading axes are samples)."""
    return merge_stats(stats, batch_stats(stats, batch, mask))


def merge_stats(a: dict, b: dict) -> dict:
    """Statistics of the union of two sample sets (e.g. two workers'). Plain arithmetic, so
    it runs on JAX arrays (traced or not) and on NumPy arrays alike."""
    total = a["count"] + b["count"]
    delta = b["mean"] - a["mean"]
    mean = a["mean"] + delta * b["count"] / total
    m2 = a["var"] * a["count"] + b["var"] * b["count"] + delta * delta * a["count"] * \
        b["count"] / total
    return {"mean": mean, "var": m2 / total, "count": total}


def merge_flat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``merge_stats`` on flat statistics in ravel order ([count, mean..., var...], the order
    ``ravel_pytree`` gives the dict), as the asynchronous store keeps them; NumPy in, out."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    d = (a.shape[0] - 1) // 2
    if a.shape != b.shape or a.shape[0] != 2 * d + 1:
        raise ValueError(f"merge_flat: expected two [1 + 2d] vectors, got {a.shape}, {b.shape}")

    def unflat(x):
        return {"count": x[0], "mean": x[1:1 + d], "var": x[1 + d:]}

    m = merge_stats(unflat(a), unflat(b))
    return np.concatenate([[m["count"]], m["mean"], m["var"]]).astype(np.float32)


def has_stats(params: Any) -> bool:
    return isinstance(params, dict) and COLLECTION in params


def get_stats(params: dict) -> dict:
    return params[COLLECTION]


def set_stats(params: dict, stats: dict) -> dict:
    return {**params, COLLECTION: stats}


def update_params(params: Any, obs: jax.Array, mask: jax.Array | None = None) -> Any:
    """``params`` with their observation statistics updated from ``obs`` (the samples
    ``mask`` marks, if given); a no-op for networks without the collection."""
    if not has_stats(params):
        return params
    return set_stats(params, update_stats(get_stats(params), obs, mask))
