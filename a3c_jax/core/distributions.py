"""Policy distributions: one small interface (log_prob, entropy, sample, mode) for the loss.

Each distribution is a ``NamedTuple`` of arrays, hence a pytree: it passes through ``vmap``,
``scan`` and ``jit`` like any array, and a network may return it directly. The batch shape is
everything but the event axis (the last axis of the parameters).

* ``Categorical(logits)`` — discrete actions; ``a`` is an integer index.
* ``DiagGaussian(mean, var)`` — continuous actions, independent dimensions; ``a`` is a float
  vector over the last axis. The paper's continuous-control A3C uses a linear mean and a
  softplus variance (``gaussian_from_outputs``) with entropy, per dimension,
  ``0.5 * (log(2 pi sigma^2) + 1)``, summed over dimensions.

``as_distribution`` turns a network's policy output into a distribution: a bare array is taken
as categorical logits (what ``networks.ActorCritic`` has always returned), a distribution is
returned unchanged. The sampled action is stored as it was drawn; clipping to the action
bounds happens in the environment adapter, so ``log_prob`` is always of the sampled action.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class Categorical(NamedTuple):
    """Softmax distribution over the last axis of ``logits`` [..., A]."""

    logits: jax.Array

    def log_prob(self, a: jax.Array) -> jax.Array:
        """log pi(a) [...] for integer actions ``a`` [...]."""
        logp = jax.nn.log_softmax(self.logits)
        return jnp.take_along_axis(logp, a[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1)


class DiagGaussian(NamedTuple):
    """Independent normals N(mean, var) over the last axis; ``mean``, ``var`` [..., D]."""

    mean: jax.Array
    var: jax.Array

    def log_prob(self, a: jax.Array) -> jax.Array:
        """sum_d -0.5 [ (a_d - mu_d)^2 / var_d + log(2 pi var_d) ]  [...]."""
        a = a.astype(self.mean.dtype)
        return -0.5 * jnp.sum(jnp.square(a - self.mean) / self.var
                              + jnp.log(self.var) + _LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        """sum_d 0.5 (log(2 pi var_d) + 1)  [...]."""
        return 0.5 * jnp.sum(jnp.log(self.var) + _LOG_2PI + 1.0, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.sqrt(self.var) * noise

    def mode(self) -> jax.Array:
        return self.mean


Distribution = Union[Categorical, DiagGaussian]


def gaussian_from_outputs(mean: jax.Array, var_pre: jax.Array, min_var: float = 1e-6
                          ) -> DiagGaussian:
    """The paper's head: linear ``mean`` and variance softplus(``var_pre``) (+ a floor that
    keeps log-probs finite when the softplus underflows)."""
    return DiagGaussian(mean=mean, var=jax.nn.softplus(var_pre) + min_var)


def as_distribution(policy_out) -> Distribution:
    """A network's policy output as a distribution: arrays are categorical logits."""
    if isinstance(policy_out, (Categorical, DiagGaussian)):
        return policy_out
    return Categorical(policy_out)
