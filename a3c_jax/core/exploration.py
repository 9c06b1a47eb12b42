"""Exploration for the value-based methods: epsilon-greedy acting and its schedule.

The paper (Section 5.1 and supplementary 8): every actor-learner acts epsilon-greedily, with
epsilon annealed linearly from 1 to a final value eps_f over the first steps of training;
eps_f is sampled once per thread from {0.1, 0.01, 0.5} with probabilities {0.4, 0.3, 0.3}, so
the threads explore differently at any moment. ``Config.eps_final >= 0`` fixes eps_f instead.

Everything is pure and jittable; epsilon may be a traced scalar (or a [B] vector, one per
environment), so a jitted worker step takes the current epsilon as an argument and never
retraces as it anneals.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from a3c_jax.core.rollout import Policy

# The paper's final-epsilon distribution (supplementary, Section 8).
FINAL_EPSILONS = (0.1, 0.01, 0.5)
FINAL_EPSILON_PROBS = (0.4, 0.3, 0.3)


def greedy_action(q: jax.Array) -> jax.Array:
    """argmax_a q [..., A] as int32 [...]."""
    return jnp.argmax(q, axis=-1).astype(jnp.int32)


def epsilon_greedy_action(q: jax.Array, epsilon, key: chex.PRNGKey) -> jax.Array:
    """argmax_a q with probability 1 - epsilon, a uniform action otherwise.

    Args:
      q: [..., A] action values; the leading axes are a batch.
      epsilon: scalar, or broadcastable to q.shape[:-1] (one epsilon per batch entry).
      key: PRNG key.
    Returns:
      [...] int32 actions. The uniform draw may pick the greedy action too, so the greedy
      action has probability 1 - epsilon + epsilon / A.
    """
    k_explore, k_action = jax.random.split(key)
    batch = q.shape[:-1]
    greedy = greedy_action(q)
    uniform = jax.random.randint(k_action, batch, 0, q.shape[-1], dtype=jnp.int32)
    explore = jax.random.uniform(k_explore, batch) < epsilon
    return jnp.where(explore, uniform, greedy)


def epsilon_greedy(apply_fn: Callable, epsilon) -> Policy:
    """A ``rollout.Policy`` acting epsilon-greedily on ``apply_fn(params, obs) -> Q [..., A]``.

    ``epsilon`` is closed over; inside a jitted function it may be a traced value. The
    (feedforward) carry passes through.
    """

    def policy(params, carry, obs, key):
        return carry, epsilon_greedy_action(apply_fn(params, obs), epsilon, key)

    return policy


def greedy(apply_fn: Callable) -> Policy:
    """A ``rollout.Policy`` acting greedily on ``apply_fn(params, obs) -> Q [..., A]``."""

    def policy(params, carry, obs, key):
        return carry, greedy_action(apply_fn(params, obs))

    return policy


def epsilon_at(step, eps_final, anneal_steps: int):
    """Linear schedule: 1 at step 0, ``eps_final`` from ``anneal_steps`` on.

    eps(step) = 1 + (eps_final - 1) * min(step / anneal_steps, 1). Works on Python numbers
    and on (traced) arrays alike.
    """
    if anneal_steps <= 0:
        raise ValueError(f"anneal_steps must be positive, got {anneal_steps}")
    frac = jnp.minimum(jnp.asarray(step, jnp.float32) / anneal_steps, 1.0)
    return 1.0 + (jnp.asarray(eps_final, jnp.float32) - 1.0) * frac


def sample_final_epsilon(key: chex.PRNGKey, shape: tuple[int, ...] = ()) -> jax.Array:
    """Final epsilons drawn from {0.1, 0.01, 0.5} with probabilities {0.4, 0.3, 0.3}."""
    return jax.random.choice(key, jnp.asarray(FINAL_EPSILONS, jnp.float32), shape,
                             p=jnp.asarray(FINAL_EPSILON_PROBS, jnp.float32))


def final_epsilon(config, key: chex.PRNGKey, shape: tuple[int, ...] = ()) -> jax.Array:
    """``config.eps_final`` when it is >= 0, else the paper's per-actor draw from ``key``."""
    if config.eps_final >= 0:
        return jnp.full(shape, config.eps_final, jnp.float32)
    return sample_final_epsilon(key, shape)
