"""Networks: actor-critics with a shared torso and separate heads, and a Q-network.

With ``shared_torso=False`` an actor-critic has two torsos of the same shape, one under the
policy head and one under the value head (separate policy and value networks: the paper's
choice for continuous control, Stable-Baselines3's default), so the value loss no longer
reaches the policy's features.

Actor-critics return ``(policy, value)``. The policy output is categorical logits [..., A]
(discrete actions) or a ``distributions.DiagGaussian`` with a linear mean and a softplus
variance (continuous actions: the paper's form), one head for both (``_policy_head``);
``distributions.as_distribution`` reads either. ``RecurrentActorCritic`` puts an LSTM after the
torso (the paper's A3C-LSTM) and maps ``(carry, obs) -> (carry, (policy, value))``; its carry
is reset by the caller at episode boundaries (``rollout.unroll``,
``losses.recurrent_actor_critic_segment_loss``). ``make_actor_critic`` picks among them from
the environment's action space and the config.

With ``obs_norm`` the network standardises its input with running statistics held in the
non-trainable variable collection ``"obs_norm"`` (see ``a3c_jax.core.normalization``).

The MLP torso serves vector observations. The conv torsos (``a3c_jax.core.conv``) are the paper's
Atari network (``atari``: conv 16 8x8 stride 4, conv 32 4x4 stride 2, dense 256, on uint8
84x84x4 frames divided by 255) and the same network scaled to MinAtar's 10x10xC frames
(``conv``: 16 3x3 and 32 3x3, stride 1, dense 256); ``auto`` picks among mlp, conv and atari
by the observation's shape.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax.core import distributions, normalization
from a3c_jax.core.conv import (ATARI_LAYERS, ConvTorso, PatchConv,  # noqa: F401 - re-exported
                          dense as _dense)


class MLPTorso(nn.Module):
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for h in self.hidden:
            x = jnp.tanh(_dense(h)(x))
        return x


def make_torso(kind: str, hidden: Sequence[int]) -> nn.Module:
    if kind == "conv":
        return ConvTorso()
    if kind == "atari":
        return ConvTorso(layers=ATARI_LAYERS, scale=1.0 / 255.0)
    if kind == "mlp":
        return MLPTorso(tuple(hidden))
    raise ValueError(f"torso must be 'mlp', 'conv' or 'atari', got {kind!r}")


ATARI_MIN_SIZE = 36
"""Frames at least this high and wide take the paper's Atari torso under ``auto``."""


def resolve_torso(kind: str, obs_shape: tuple[int, ...]) -> str:
    """'auto' picks atari for frames of at least ``ATARI_MIN_SIZE`` pixels a side (Atari's
    84x84x4), conv for smaller image-like observations (MinAtar's 10x10xC), mlp otherwise."""
    image = len(obs_shape) == 3
    if kind == "auto":
        if not image:
            return "mlp"
        return "atari" if min(obs_shape[:2]) >= ATARI_MIN_SIZE else "conv"
    if kind in ("conv", "atari") and not image:
        raise ValueError(f"torso: {kind} needs [H, W, C] observations, got shape {obs_shape}")
    if kind == "atari" and min(obs_shape[:2]) < ATARI_MIN_SIZE:
        raise ValueError(f"torso: atari needs frames of at least {ATARI_MIN_SIZE}x"
                         f"{ATARI_MIN_SIZE}, got shape {obs_shape}; use conv")
    return kind


def _obs_ndim(torso: str) -> int:
    return 3 if torso in ("conv", "atari") else 1


def normalize_obs(module: nn.Module, obs: jax.Array, obs_ndim: int, clip: float = 10.0
                  ) -> jax.Array:
    """Standardise ``obs`` with the running statistics in ``module``'s ``"obs_norm"``
    collection (declared here; read-only under ``apply``; no gradient reaches them)."""
    shape = obs.shape[obs.ndim - obs_ndim:]
    init = normalization.init_stats(shape)
    col = normalization.COLLECTION
    mean = module.variable(col, "mean", lambda: init["mean"]).value
    var = module.variable(col, "var", lambda: init["var"]).value
    module.variable(col, "count", lambda: init["count"])
    mean, var = jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
    return jnp.clip((obs - mean) / jnp.sqrt(var + 1e-8), -clip, clip)


def _policy_head(discrete: bool, action_dim: int, z: jax.Array):
    """Logits [..., A], or the paper's Gaussian: linear mean, softplus variance [..., D]."""
    if discrete:
        return _dense(action_dim, scale=0.01)(z)
    mean = _dense(action_dim, scale=0.01)(z)
    var_pre = _dense(action_dim, scale=0.01)(z)
    return distributions.gaussian_from_outputs(mean, var_pre)


def _torsos(module: nn.Module, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(policy features, value features): one torso's output twice, or two torsos'."""
    if module.obs_norm:
        obs = normalize_obs(module, obs, _obs_ndim(module.torso))
    z = make_torso(module.torso, module.hidden)(obs)
    if module.shared_torso:
        return z, z
    return z, make_torso(module.torso, module.hidden)(obs)


class ActorCritic(nn.Module):
    """Returns (policy, value [...]) from one shared torso (or two): categorical logits
    [..., A] with ``discrete``, else a ``DiagGaussian`` over [..., D] actions with a linear
    mean and a softplus variance (the paper's continuous-control head)."""

    action_dim: int
    discrete: bool = True
    torso: str = "mlp"
    hidden: Sequence[int] = (64, 64)
    obs_norm: bool = False
    shared_torso: bool = True

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[Any, jax.Array]:
        z_pi, z_v = _torsos(self, obs)
        policy = _policy_head(self.discrete, self.action_dim, z_pi)
        value = _dense(1, scale=1.0)(z_v)[..., 0]
        return policy, value


LSTMCarry = tuple[jax.Array, jax.Array]


def zero_carry(batch_shape: tuple[int, ...], lstm_size: int) -> LSTMCarry:
    """The LSTM carry (c, h) at an episode start: zeros [*batch_shape, lstm_size]."""
    z = jnp.zeros(tuple(batch_shape) + (lstm_size,), jnp.float32)
    return (z, z)


def reset_carry(carry, done: jax.Array):
    """Zero the recurrent carry where ``done`` [B] (an episode ended; the next step begins a
    new one)."""
    return jax.tree.map(
        lambda c: jnp.where(done.reshape(done.shape + (1,) * (c.ndim - done.ndim)),
                            jnp.zeros_like(c), c), carry)


class RecurrentActorCritic(nn.Module):
    """Torso, then an LSTM of ``lstm_size`` cells (the paper's A3C-LSTM uses 256), then the
    policy and value heads. ``(carry, obs) -> (carry, (policy, value))`` for one time step;
    ``carry`` is (c, h), each [..., lstm_size] with the leading dims of ``obs``."""

    action_dim: int
    discrete: bool = True
    torso: str = "mlp"
    hidden: Sequence[int] = (64, 64)
    lstm_size: int = 256
    obs_norm: bool = False

    @nn.compact
    def __call__(self, carry: LSTMCarry, obs: jax.Array) -> tuple[LSTMCarry, tuple[Any,
                                                                                   jax.Array]]:
        if self.obs_norm:
            obs = normalize_obs(self, obs, _obs_ndim(self.torso))
        z = make_torso(self.torso, self.hidden)(obs)
        carry, z = nn.OptimizedLSTMCell(self.lstm_size, name="lstm")(carry, z)
        policy = _policy_head(self.discrete, self.action_dim, z)
        value = _dense(1, scale=1.0)(z)[..., 0]
        return carry, (policy, value)

    def initial_carry(self, batch_shape: tuple[int, ...]) -> LSTMCarry:
        return zero_carry(batch_shape, self.lstm_size)


class QNetwork(nn.Module):
    """Returns action values Q(s, .) [..., A]."""

    num_actions: int
    torso: str = "mlp"
    hidden: Sequence[int] = (64, 64)

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        z = make_torso(self.torso, self.hidden)(obs)
        return _dense(self.num_actions, scale=1.0)(z)


def is_recurrent(network: nn.Module) -> bool:
    return isinstance(network, RecurrentActorCritic)


def make_actor_critic(config, env) -> nn.Module:
    """The actor-critic for ``env`` as the config describes it: categorical or Gaussian policy
    from ``env.discrete``; an LSTM after the torso with ``config.recurrent``; observation
    statistics with ``config.obs_norm`` (the config must be resolved: ``defaults.resolve``)."""
    if config.obs_norm is None:
        raise ValueError("make_actor_critic needs a resolved config (obs_norm is unset)")
    torso = resolve_torso(config.torso, env.obs_shape)
    hidden = tuple(config.hidden)
    if config.recurrent:
        return RecurrentActorCritic(action_dim=env.action_dim, discrete=env.discrete,
                                    torso=torso, hidden=hidden, lstm_size=config.lstm_size,
                                    obs_norm=config.obs_norm)
    return ActorCritic(action_dim=env.action_dim, discrete=env.discrete, torso=torso,
                       hidden=hidden, obs_norm=config.obs_norm,
                       shared_torso=config.shared_torso is not False)


def init_params(network: nn.Module, key: jax.Array, obs_shape: tuple[int, ...]):
    """Initial variables of any network here (actor-critic, recurrent or not, or Q-network),
    from a dummy batch of one observation (and a zero carry)."""
    dummy = jnp.zeros((1,) + tuple(obs_shape), jnp.float32)
    if is_recurrent(network):
        return network.init(key, network.initial_carry((1,)), dummy)
    return network.init(key, dummy)


def make_q_network(config, env) -> QNetwork:
    if not env.discrete:
        raise ValueError(f"env: {env.name} has a continuous action space; Q-learning needs "
                         "discrete actions")
    torso = resolve_torso(config.torso, env.obs_shape)
    return QNetwork(num_actions=env.num_actions, torso=torso, hidden=tuple(config.hidden))
