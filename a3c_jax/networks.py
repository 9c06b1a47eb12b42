"""Networks: an actor-critic with a shared torso and separate heads, and a Q-network.

The MLP torso serves vector observations. The conv torso is the paper's Atari network
(conv 16x8x8/4, conv 32x4x4/2, dense 256) adapted to MinAtar's 10x10xC frames: the same two
convolutions with kernels and strides scaled to the small frame (16x3x3/1, 32x3x3/1), then a
dense 256 layer.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _dense(features: int, scale: float = np.sqrt(2.0)) -> nn.Dense:
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale),
                    bias_init=nn.initializers.zeros)


class MLPTorso(nn.Module):
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for h in self.hidden:
            x = jnp.tanh(_dense(h)(x))
        return x


class ConvTorso(nn.Module):
    """Paper's conv torso scaled to 10x10 MinAtar frames. Input [..., H, W, C]."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        init = nn.initializers.orthogonal(np.sqrt(2.0))
        x = nn.relu(nn.Conv(16, (3, 3), strides=(1, 1), padding="VALID", kernel_init=init)(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=(1, 1), padding="VALID", kernel_init=init)(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(_dense(256)(x))
        return x.reshape(lead + (256,))


def make_torso(kind: str, hidden: Sequence[int]) -> nn.Module:
    if kind == "conv":
        return ConvTorso()
    if kind == "mlp":
        return MLPTorso(tuple(hidden))
    raise ValueError(f"torso must be 'mlp' or 'conv', got {kind!r}")


def resolve_torso(kind: str, obs_shape: tuple[int, ...]) -> str:
    """'auto' picks conv for image-like observations (rank 3), mlp otherwise."""
    if kind == "auto":
        return "conv" if len(obs_shape) == 3 else "mlp"
    if kind == "conv" and len(obs_shape) != 3:
        raise ValueError(f"torso: conv needs [H, W, C] observations, got shape {obs_shape}")
    return kind


class ActorCritic(nn.Module):
    """Returns (policy logits [..., A], value [...]) from one shared torso."""

    num_actions: int
    torso: str = "mlp"
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = make_torso(self.torso, self.hidden)(obs)
        logits = _dense(self.num_actions, scale=0.01)(z)
        value = _dense(1, scale=1.0)(z)[..., 0]
        return logits, value


class QNetwork(nn.Module):
    """Returns action values Q(s, .) [..., A]."""

    num_actions: int
    torso: str = "mlp"
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        z = make_torso(self.torso, self.hidden)(obs)
        return _dense(self.num_actions, scale=1.0)(z)


def make_actor_critic(config, env) -> ActorCritic:
    """The actor-critic for ``env`` as the config describes it."""
    if not env.discrete:
        raise ValueError(f"env: {env.name} has a continuous action space; the actor-critic "
                         "here is categorical")
    torso = resolve_torso(config.torso, env.obs_shape)
    return ActorCritic(num_actions=env.num_actions, torso=torso, hidden=tuple(config.hidden))


def make_q_network(config, env) -> QNetwork:
    if not env.discrete:
        raise ValueError(f"env: {env.name} has a continuous action space; Q-learning needs "
                         "discrete actions")
    torso = resolve_torso(config.torso, env.obs_shape)
    return QNetwork(num_actions=env.num_actions, torso=torso, hidden=tuple(config.hidden))
