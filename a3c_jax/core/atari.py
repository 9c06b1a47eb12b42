"""Atari through the Arcade Learning Environment: ``ALE/<Game>-v5`` ids as an environment family.

``AtariEnv(name, num_envs, options)`` has ``envs.Env``'s interface (``reset(key)``,
``step(key, state, action) -> (state, StepOut)``, ``obs_shape``, ``num_actions``) and runs
inside jitted code: each batch of ``num_envs`` games is one ale-py vector environment
(``ale_py.vector_env.AtariVectorEnv``) whose C++ emulators do the standard preprocessing (84x84
grey frames, a stack of the last 4, the max over the last two raw frames of each action, 4
frames per action, up to ``noop_max`` no-ops and FIRE at a game's start) on their own threads,
called through XLA foreign functions: no Python and no GIL while the games step.

Every ``reset`` makes a fresh emulator batch (a host callback; the handle travels in the
state), so each asynchronous worker, each seed of a vmapped sync run and each evaluation has
its own games; the foreign calls batch sequentially under ``vmap``. The emulator state lives
outside JAX: a saved ``EnvState`` cannot be restored in another process.

Semantics match the gymnax adapter: ``obs`` is already the reset observation where a game
ended, ``final_obs`` the last frame stack before it (the bootstrap of a truncated step).
``terminated`` is the game's end, and also a lost life with ``life_loss_terminal`` (training
only: the game goes on, the return is cut there); ``truncated`` is ``max_episode_frames``.
The training reward is clipped to its sign with ``reward_clip``; episodes for bookkeeping are
whole games, and ``completed_return`` is the game's unclipped score. Observations are uint8
[84, 84, 4] (height, width, stack); the network scales them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from a3c_jax import _xla
from a3c_jax.core.env_state import EnvState, StepOut

PREFIX = "ALE/"
FRAME_SKIP = 4          # emulator frames per agent step (the paper's)
STACK, SIZE = 4, 84
_INSTALL = "pip install 'a3c_jax[atari]' (ale-py, with the ROMs)"


@dataclasses.dataclass(frozen=True)
class AtariOptions:
    """The settings papers differ on (``Config`` fields of the same names)."""

    repeat_action_probability: float = 0.0
    life_loss_terminal: bool = True
    reward_clip: bool = True
    noop_max: int = 30
    max_episode_frames: int = 108_000

    @classmethod
    def from_config(cls, config, training: bool) -> "AtariOptions":
        """The options of ``config`` (defaults without one); a lost life ends an episode only
        in training, never in evaluation."""
        values = {f.name: getattr(config, f.name, f.default) for f in dataclasses.fields(cls)}
        if not training:
            values["life_loss_terminal"] = False
        return cls(**values)


class AtariParams(NamedTuple):
    max_steps_in_episode: int    # agent steps (what evaluation plays by default)


class AtariInner(NamedTuple):
    handle: jax.Array            # uint8 [8]: the emulator batch
    lives: jax.Array             # int32 [B]


def is_atari(name: str) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


@functools.lru_cache(maxsize=None)
def _registry() -> dict[str, str]:
    """ALE pixel ids -> ROM names (``ALE/Pong-v5`` -> ``pong``)."""
    try:
        import ale_py
        import gymnasium
    except ImportError:
        raise ValueError(f"env: Atari ids need the Arcade Learning Environment: {_INSTALL}"
                         ) from None
    gymnasium.register_envs(ale_py)
    return {k: s.kwargs["game"] for k, s in gymnasium.registry.items()
            if k.startswith(PREFIX) and "game" in s.kwargs
            and s.kwargs.get("obs_type", "rgb") == "rgb"}


def valid_names() -> list[str]:
    return sorted(_registry())


def check_name(name: str) -> str:
    """The ROM of ``name``; ValueError naming the option when it is no ALE game id."""
    games = _registry()
    if name not in games:
        close = [k for k in games if name[len(PREFIX):].split("-")[0].lower()
                 in k.lower()][:5]
        raise ValueError(f"env: unknown Atari game {name!r}; ALE ids look like ALE/Pong-v5"
                         + (f" (close: {', '.join(close)})" if close else
                            f" ({len(games)} games, e.g. ALE/Breakout-v5, ALE/Pong-v5)"))
    return games[name]


@functools.lru_cache(maxsize=None)
def num_actions(name: str) -> int:
    """Size of the game's minimal action set."""
    from ale_py.vector_env import AtariVectorEnv

    return int(AtariVectorEnv(check_name(name), 1, num_threads=1).single_action_space.n)


@functools.lru_cache(maxsize=None)
def _register_targets() -> None:
    import ale_py

    lib = ale_py._ale_py
    jax.ffi.register_ffi_target("a3c_jax_ale_reset", lib.VectorXLAReset(), platform="cpu")
    jax.ffi.register_ffi_target("a3c_jax_ale_step", lib.VectorXLAStep(), platform="cpu")
    if hasattr(lib, "VectorXLAStepGPU"):
        jax.ffi.register_ffi_target("a3c_jax_ale_reset", lib.VectorXLAResetGPU(),
                                    platform="CUDA")
        jax.ffi.register_ffi_target("a3c_jax_ale_step", lib.VectorXLAStepGPU(),
                                    platform="CUDA")


class AtariEnv:
    """A batch of ``num_envs`` games of one ALE id (module docstring)."""

    discrete = True
    action_shape: tuple[int, ...] = ()
    action_low = action_high = None

    def __init__(self, name: str, num_envs: int, options: AtariOptions | None = None):
        self.game = check_name(name)
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        _register_targets()
        self.name, self.num_envs = name, num_envs
        self.options = options or AtariOptions()
        self.num_actions = num_actions(name)
        self.obs_shape = (SIZE, SIZE, STACK)
        self.params = AtariParams(self.options.max_episode_frames // FRAME_SKIP)
        self.threads = max(1, min(num_envs, _xla.host_cores()))  # a worker's share
        self._games: list = []     # keeps every emulator batch a handle points to alive

    @property
    def action_dim(self) -> int:
        return self.num_actions

    def clip_action(self, action: jax.Array) -> jax.Array:
        return action

    # --- the emulator batch, through XLA ---------------------------------------------------
    def _new_games(self) -> np.ndarray:
        from ale_py.vector_env import AtariVectorEnv

        o = self.options
        games = AtariVectorEnv(
            self.game, self.num_envs, num_threads=self.threads, frameskip=FRAME_SKIP,
            stack_num=STACK, img_height=SIZE, img_width=SIZE, grayscale=True, maxpool=True,
            noop_max=o.noop_max, repeat_action_probability=o.repeat_action_probability,
            max_num_frames_per_episode=o.max_episode_frames, episodic_life=False,
            reward_clipping=False, use_fire_reset=True)
        self._games.append(games)
        return np.frombuffer(games.ale.handle(), np.uint8).copy()

    def _shapes(self, *tail):
        b = (self.num_envs,)
        return (jax.ShapeDtypeStruct((8,), jnp.uint8),
                jax.ShapeDtypeStruct(b + (STACK, SIZE, SIZE), jnp.uint8), *tail,
                jax.ShapeDtypeStruct(b, jnp.int32),      # env ids
                jax.ShapeDtypeStruct(b, jnp.int32),      # lives
                jax.ShapeDtypeStruct(b, jnp.int32),      # frame number
                jax.ShapeDtypeStruct(b, jnp.int32))      # episode frame number

    def _reset_games(self, handle, indices, key):
        seeds = jax.random.randint(key, indices.shape, 0, 2 ** 31 - 1, jnp.int32)
        call = jax.ffi.ffi_call("a3c_jax_ale_reset", self._shapes(),
                                has_side_effect=True)
        handle, obs, ids, lives, _, _ = call(handle, indices.astype(jnp.int32), seeds)
        return handle, _ordered(ids, obs), _ordered(ids, lives)

    def reset(self, key: jax.Array) -> EnvState:
        handle, obs, lives = jax.custom_batching.sequential_vmap(self._fresh_games)(key)
        zeros = jnp.zeros((self.num_envs,), jnp.float32)
        return EnvState(inner=AtariInner(handle, lives), obs=_hwc(obs), episode_return=zeros,
                        episode_length=jnp.zeros((self.num_envs,), jnp.int32))

    def _fresh_games(self, key):
        handle = io_callback(self._new_games, jax.ShapeDtypeStruct((8,), jnp.uint8),
                             ordered=False)
        return self._reset_games(handle, jnp.arange(self.num_envs), key)

    def step(self, key: jax.Array, state: EnvState, action: jax.Array
             ) -> tuple[EnvState, StepOut]:
        handle, obs, raw, game_end, limit, lives, next_obs, next_lives = (
            jax.custom_batching.sequential_vmap(self._emulate)(
                state.inner.handle, action.astype(jnp.int32), key))
        over = jnp.logical_or(game_end, limit)
        life_lost = jnp.logical_and(lives < state.inner.lives, jnp.logical_not(over))
        terminated = game_end
        if self.options.life_loss_terminal:
            terminated = jnp.logical_or(terminated, life_lost)
        truncated = jnp.logical_and(limit, jnp.logical_not(terminated))
        raw = raw.astype(jnp.float32)
        reward = jnp.sign(raw) if self.options.reward_clip else raw
        ep_return, ep_length = state.episode_return + raw, state.episode_length + 1
        out = StepOut(obs=_hwc(next_obs), reward=reward, terminated=terminated,
                      truncated=truncated, final_obs=_hwc(obs),
                      completed_return=jnp.where(over, ep_return, 0.0),
                      completed_length=jnp.where(over, ep_length, 0))
        new_state = EnvState(inner=AtariInner(handle, next_lives), obs=out.obs,
                             episode_return=jnp.where(over, 0.0, ep_return),
                             episode_length=jnp.where(over, 0, ep_length))
        return new_state, out

    def _emulate(self, handle, action, key):
        """One step of every game, then a reset of the games that ended (unbatched: under
        ``vmap`` it runs once per batch element)."""
        b = (self.num_envs,)
        call = jax.ffi.ffi_call(
            "a3c_jax_ale_step", self._shapes(jax.ShapeDtypeStruct(b, jnp.int32),
                                             jax.ShapeDtypeStruct(b, jnp.bool_),
                                             jax.ShapeDtypeStruct(b, jnp.bool_)),
            has_side_effect=True)
        handle, obs, raw, game_end, limit, ids, lives, _, _ = call(
            handle, action, jnp.ones(b, jnp.float32))
        obs, raw, game_end, limit, lives = (_ordered(ids, x) for x in
                                            (obs, raw, game_end, limit, lives))
        over = jnp.logical_or(game_end, limit)
        handle, next_obs, next_lives = self._reset_finished(handle, over, obs, lives, key)
        return handle, obs, raw, game_end, limit, lives, next_obs, next_lives

    def _reset_finished(self, handle, over, obs, lives, key):
        """Reset the games that ended (``over`` [B]) in one foreign call whose index list
        has the static size of their count (``lax.switch`` on it)."""

        def branch(k: int):
            def reset(handle):
                if k == 0:
                    return handle, obs, lives
                idx = jnp.nonzero(over, size=k)[0]
                h, new_obs, new_lives = self._reset_games(handle, idx, key)
                return (h, jnp.where(over[:, None, None, None], new_obs, obs),
                        jnp.where(over, new_lives, lives))
            return reset

        count = jnp.sum(over.astype(jnp.int32))
        return jax.lax.switch(count, [branch(k) for k in range(self.num_envs + 1)], handle)


def _ordered(ids: jax.Array, x: jax.Array) -> jax.Array:
    """Rows of ``x`` in environment order (the emulators report theirs in ``ids``)."""
    return jnp.take(x, jnp.argsort(ids), axis=0)


def _hwc(obs: jax.Array) -> jax.Array:
    """[B, stack, H, W] -> [B, H, W, stack] (channels last, as the conv torso reads them)."""
    return jnp.transpose(obs, (0, 2, 3, 1))
