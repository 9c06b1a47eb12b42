"""Where a synchronous run's two halves run: the environments and the learner.

Gymnax environments are JAX programs and run wherever the learner runs. Atari games
(``a3c_jax.core.atari``) are stepped by XLA foreign calls registered for the host CPU only, so
on a machine whose default device is a GPU the games must stay on the host while the network
and its update may run on the GPU.
"""

from __future__ import annotations

from typing import Any, Sequence

from a3c_jax.core import atari


def placement(env_id: str, devices: Sequence[Any], host_devices: Sequence[Any]
              ) -> tuple[Any, Any]:
    """``(env_device, learner_device)`` for ``env_id``: the learner on ``devices[0]`` (JAX's
    default device); the environments beside it, except Atari games off the host CPU, which go
    to ``host_devices[0]``. Devices are anything with a ``platform`` attribute."""
    learner = devices[0]
    if atari.is_atari(env_id) and learner.platform != "cpu":
        return host_devices[0], learner
    return learner, learner


def split(env_device: Any, learner_device: Any) -> bool:
    """Whether the environments and the learner are on different devices."""
    return env_device != learner_device
