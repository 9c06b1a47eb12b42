"""Checks of ``Config``'s method options: switches, segments, how the loss combines, network
shape. Called by ``Config.validate``; each raises a ``ValueError`` whose message starts with
the field it is about."""

from __future__ import annotations

VALUE_ALGOS = ("q1", "sarsa", "nq")
SEGMENTS = ("fixed", "until-terminal")
COMBINES = ("sum", "step-mean", "env-mean")   # a3c_jax.core.combine.COMBINES
SWITCHES = ("obs_norm", "adv_norm", "recurrent", "reward_norm", "shared_torso")
ACTOR_CRITIC_ONLY = ("recurrent", "obs_norm", "adv_norm")


def check_method_options(config, auto_fields: tuple[str, ...]) -> None:
    for name in SWITCHES:
        value = getattr(config, name)
        if not (isinstance(value, bool) or (value is None and name in auto_fields)):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    if config.segments not in SEGMENTS:
        raise ValueError(f"segments must be one of {', '.join(SEGMENTS)}, got "
                         f"{config.segments!r}")
    if config.combine not in COMBINES:
        raise ValueError(f"combine must be one of {', '.join(COMBINES)}, got "
                         f"{config.combine!r}")
    if config.algo in VALUE_ALGOS:
        for name in ACTOR_CRITIC_ONLY:
            if getattr(config, name):
                raise ValueError(f"{name} applies to the actor-critic (a2c, a3c), not to "
                                 f"{config.algo}")
        if config.shared_torso is False:
            raise ValueError(f"shared_torso applies to the actor-critic (a2c, a3c), not to "
                             f"{config.algo}, whose Q-network has no value head")
    if config.recurrent and config.shared_torso is False:
        raise ValueError("shared_torso False (separate policy and value networks) is not "
                         "available with recurrent (one LSTM after one torso)")
    if config.segments == "until-terminal" and config.backend == "emulated":
        raise ValueError("segments until-terminal: the emulated backend counts t_max * E env "
                         "steps per update; use fixed segments there")
