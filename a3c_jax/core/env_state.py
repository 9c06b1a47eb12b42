"""What every environment family returns: the batched state and one step's report.

``envs.Env`` (gymnax) and ``atari.AtariEnv`` (the Arcade Learning Environment) both hand out
these types, so the unroll, the losses and the drivers read one interface.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
from flax import struct


@struct.dataclass
class EnvState:
    """Batched environment state plus running episode statistics."""

    inner: Any
    """the family's own state, batched (gymnax state; the emulator handle and lives)."""
    obs: jax.Array
    """[B, *obs_shape] current observation."""
    episode_return: jax.Array
    """[B] return of the episode in progress."""
    episode_length: jax.Array
    """[B] length of the episode in progress."""


class StepOut(NamedTuple):
    """What one batched step reports; every field has leading dim B."""

    obs: jax.Array            # next observation (reset obs where the episode ended)
    reward: jax.Array         # float32
    terminated: jax.Array     # bool
    truncated: jax.Array      # bool (never True where terminated is True)
    final_obs: jax.Array      # observation before the auto-reset; equals obs when not done
    completed_return: jax.Array  # return of the episode that ended here, 0 elsewhere
    completed_length: jax.Array  # its length, 0 elsewhere
