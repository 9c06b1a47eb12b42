"""How a batch of segments becomes one loss: the three ways to combine per-step terms.

A batch holds N segments, one per environment (the N lockstep environments of the sync
driver, or the E environments of one asynchronous worker), time-major [T, N], with a mask
[T, N] that is True on the steps that belong to a segment: every step with fixed segments
(``--segments fixed``), the first T_n steps of environment n with the paper's segments, which
end at an episode's end (``--segments until-terminal``). For per-step terms l[t, n]:

    sum        L = sum_n sum_t l[t, n]                      the paper: gradients accumulated
    step-mean  L = sum_n sum_t l[t, n] / sum_n T_n           every step weighs the same
    env-mean   L = 1/N sum_n (1/T_n) sum_t l[t, n]           every segment weighs the same

With equal lengths (T_n = T for every n) the three differ only by constants: sum = N T
step-mean and step-mean = env-mean. When the T_n differ, step-mean is ``sum`` divided by the
number of steps in the batch (the direction of the paper's accumulated gradient), while
env-mean gives each step of a short segment more weight than a step of a long one:
(1/N) sum_n (1/T_n) sum_t grad l is not the step-weighted mean of the gradients.
"""

from __future__ import annotations

from typing import Literal

import chex
import jax
import jax.numpy as jnp

Combine = Literal["sum", "step-mean", "env-mean"]
COMBINES: tuple[str, ...] = ("sum", "step-mean", "env-mean")


def check(how: str) -> str:
    if how not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got {how!r}")
    return how


def _valid(x_tn: jax.Array, mask_tn) -> jax.Array:
    if mask_tn is None:
        return jnp.ones(x_tn.shape, x_tn.dtype)
    chex.assert_equal_shape([x_tn, mask_tn])
    return mask_tn.astype(x_tn.dtype)


def combine(x_tn: jax.Array, mask_tn: jax.Array | None = None, how: str = "sum") -> jax.Array:
    """Reduce per-step terms ``x_tn`` [T, N] to a scalar as ``how`` says (module docstring).

    ``mask_tn`` [T, N] (bool) marks the steps of each segment; None means every step. Masked
    steps contribute nothing, whatever their value (NaN included). A segment with no step
    (T_n = 0) counts as zero in ``env-mean``.
    """
    chex.assert_rank(x_tn, 2)
    check(how)
    m = _valid(x_tn, mask_tn)
    xm = jnp.where(m > 0, x_tn, 0.0)
    if how == "sum":
        return jnp.sum(xm)
    if how == "step-mean":
        return jnp.sum(xm) / jnp.maximum(jnp.sum(m), 1.0)
    return jnp.mean(jnp.sum(xm, axis=0) / jnp.maximum(jnp.sum(m, axis=0), 1.0))


def masked_mean(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The mean of ``x`` over the entries ``mask`` marks (all of them without one)."""
    if mask is None:
        return jnp.mean(x)
    m = mask.astype(x.dtype)
    return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(jnp.sum(m), 1.0)


def masked_std(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The standard deviation of ``x`` over the entries ``mask`` marks."""
    mu = masked_mean(x, mask)
    return jnp.sqrt(masked_mean(jnp.square(x - mu), mask))


def steps_taken(mask_tn: jax.Array | None, shape: tuple[int, ...]) -> jax.Array:
    """Env steps in a batch of segments of ``shape`` [T, N]: the marked steps, or T N."""
    if mask_tn is None:
        return jnp.asarray(shape[0] * shape[1], jnp.int32)
    return jnp.sum(mask_tn.astype(jnp.int32))
