"""A thin adapter over gymnax: batched reset/step with episode bookkeeping.

gymnax >= 1.0 semantics are kept apart on purpose:

* ``terminated`` — the MDP ended; the bootstrap value after this step is zero;
* ``truncated`` — a time limit cut the episode; the return bootstraps from the value of
  ``final_obs`` (gymnax's ``info["final_observation"]``), the observation *before* the
  automatic reset.

``obs`` returned by :meth:`Env.step` is already the reset observation when the step ended an
episode. Everything here is pure and jittable; the batch axis is the leading one.

Continuous actions: ``discrete`` is False, ``action_shape`` / ``action_low`` / ``action_high``
describe the box, and :meth:`Env.step` clips the action to it before stepping (the agent keeps
the unclipped sample for its log-probability).

Wrapped environments are registered under their own names in ``WRAPPED_ENVS``:
``CartPole-masked-v1`` is CartPole-v1 with the two velocities removed from the observation
(cart position and pole angle remain), so a policy needs memory to act well;
``CartPole-x100-v1`` and ``CartPole-x0.01-v1`` are CartPole-v1 with every reward multiplied
by 100 or 0.01 (the same task in other units: for defaults that must not depend on the scale
of the reward).

``make_env`` also builds Atari games (``ALE/Pong-v5``, ...; ``a3c_jax.core.atari``) behind the same
interface.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from a3c_jax.core import atari
from a3c_jax.core.env_state import EnvState, StepOut  # noqa: F401 - re-exported


class Wrapped(NamedTuple):
    """A gymnax environment seen through an observation transform."""

    base: str                       # gymnax id
    keep: tuple[int, ...] | None    # indices of the observation vector that remain (None: all)
    doc: str
    reward_scale: float = 1.0       # every reward is multiplied by this


WRAPPED_ENVS: dict[str, Wrapped] = {
    "CartPole-masked-v1": Wrapped(
        "CartPole-v1", (0, 2),
        "CartPole-v1 observing only cart position and pole angle (velocities masked)"),
    "CartPole-x100-v1": Wrapped("CartPole-v1", None, "CartPole-v1, rewards x 100", 100.0),
    "CartPole-x0.01-v1": Wrapped("CartPole-v1", None, "CartPole-v1, rewards x 0.01", 0.01),
}


def valid_env_names() -> list[str]:
    return sorted(list(gymnax.registered_envs) + list(WRAPPED_ENVS))


def check_env_name(name: str) -> None:
    """Raise a ValueError listing the valid ids when ``name`` is not a known environment
    (``ALE/...`` ids: an Atari game, ``a3c_jax.core.atari``)."""
    if atari.is_atari(name):
        atari.check_name(name)
        return
    if name not in gymnax.registered_envs and name not in WRAPPED_ENVS:
        raise ValueError(
            f"env: unknown environment {name!r}. Valid gymnax ids: {', '.join(valid_env_names())}")


@functools.lru_cache(maxsize=None)
def is_discrete(name: str) -> bool:
    """Whether ``name``'s action space is discrete (builds the env object; compiles nothing)."""
    check_env_name(name)
    if atari.is_atari(name):
        return True
    env, params = gymnax.make(WRAPPED_ENVS[name].base if name in WRAPPED_ENVS else name)
    return isinstance(env.action_space(params), spaces.Discrete)


class Env:
    """A batch of ``num_envs`` copies of a gymnax environment."""

    def __init__(self, name: str, num_envs: int, env_kwargs: dict | None = None):
        check_env_name(name)
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        self.name = name
        self.num_envs = num_envs
        wrapped = WRAPPED_ENVS.get(name)
        self._keep = None if wrapped is None else wrapped.keep
        self._reward_scale = 1.0 if wrapped is None else wrapped.reward_scale
        self._env, self.params = gymnax.make(wrapped.base if wrapped else name,
                                             **(env_kwargs or {}))
        space = self._env.action_space(self.params)
        self.discrete = isinstance(space, spaces.Discrete)
        if self.discrete:
            self.num_actions = int(space.n)
            self.action_shape: tuple[int, ...] = ()
            self.action_low = self.action_high = None
        else:
            self.num_actions = 0
            self.action_shape = tuple(space.shape)
            self.action_low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
            self.action_high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
        obs, _ = self._env.reset(jax.random.key(0), self.params)
        self.obs_shape = tuple(self._observe(obs).shape)

    def _observe(self, obs: jax.Array) -> jax.Array:
        """The observation the agent sees (float32; masked for wrapped environments)."""
        obs = obs.astype(jnp.float32)
        return obs if self._keep is None else obs[..., list(self._keep)]

    @property
    def action_dim(self) -> int:
        """Number of discrete actions, or the size of a continuous action vector."""
        return self.num_actions if self.discrete else int(jnp.prod(jnp.array(self.action_shape)))

    def reset(self, key: chex.PRNGKey) -> EnvState:
        keys = jax.random.split(key, self.num_envs)
        obs, inner = jax.vmap(self._env.reset, in_axes=(0, None))(keys, self.params)
        zeros = jnp.zeros((self.num_envs,), jnp.float32)
        return EnvState(inner=inner, obs=self._observe(obs), episode_return=zeros,
                        episode_length=jnp.zeros((self.num_envs,), jnp.int32))

    def clip_action(self, action: jax.Array) -> jax.Array:
        """The action the environment receives: continuous actions clipped to the box."""
        if self.discrete:
            return action
        return jnp.clip(action, self.action_low, self.action_high)

    def step(self, key: chex.PRNGKey, state: EnvState, action: jax.Array
             ) -> tuple[EnvState, StepOut]:
        action = self.clip_action(action)
        keys = jax.random.split(key, self.num_envs)
        obs, inner, reward, terminated, truncated, info = jax.vmap(
            self._env.step, in_axes=(0, 0, 0, None))(keys, state.inner, action, self.params)
        reward = reward.astype(jnp.float32)
        if self._reward_scale != 1.0:
            reward = reward * self._reward_scale
        terminated = terminated.astype(bool)
        truncated = jnp.logical_and(truncated.astype(bool), jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        ep_return = state.episode_return + reward
        ep_length = state.episode_length + 1
        out = StepOut(
            obs=self._observe(obs), reward=reward, terminated=terminated,
            truncated=truncated, final_obs=self._observe(info["final_observation"]),
            completed_return=jnp.where(done, ep_return, 0.0),
            completed_length=jnp.where(done, ep_length, 0))
        new_state = EnvState(
            inner=inner, obs=out.obs,
            episode_return=jnp.where(done, 0.0, ep_return),
            episode_length=jnp.where(done, 0, ep_length))
        return new_state, out


def make_env(name: str, num_envs: int, config=None, training: bool = False):
    """``num_envs`` copies of ``name``: an ``Env`` (gymnax), or an ``atari.AtariEnv`` for
    ``ALE/...`` ids with the Atari options of ``config`` (a lost life ends an episode only
    with ``training``)."""
    if atari.is_atari(name):
        return atari.AtariEnv(name, num_envs, atari.AtariOptions.from_config(config, training))
    return Env(name, num_envs)
