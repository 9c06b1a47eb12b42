"""Every check of a ``Config``: ``check_config`` (what ``Config.validate`` runs) and
``check_loss_fn`` (whether a custom ``loss_fn`` can reach the workers of a backend; the run
directory's ``prepare``). Each raises a ``ValueError`` whose message starts with the field or
option it is about. Nothing here reads a file.
"""

from __future__ import annotations

import math

from a3c_jax.config.groups import AUTO_FIELDS, VALUE_ALGOS

SEGMENTS = ("fixed", "until-terminal")
COMBINES = ("sum", "step-mean", "env-mean")   # a3c_jax.core.combine.COMBINES
SWITCHES = ("obs_norm", "adv_norm", "recurrent", "reward_norm", "shared_torso")
ACTOR_CRITIC_ONLY = ("recurrent", "obs_norm", "adv_norm")
POSITIVE_INTS = ("total_steps", "num_envs", "workers", "envs_per_worker", "t_max",
                 "eps_anneal_steps", "target_interval", "stop_window", "lstm_size",
                 "max_nonfinite")
FINITE = ("lr", "gamma", "gae_lambda", "rms_decay", "rms_eps", "momentum", "max_grad_norm",
          "value_coef", "entropy_coef", "eps_final", "stop_return", "reward_scale")


def check_config(config) -> None:
    """Every field of ``config`` alone, then the fields that constrain each other. An auto
    field (``AUTO_FIELDS``) may be None; once set it is checked like the others."""
    from a3c_jax.core import envs  # local: keeps config import light

    envs.check_env_name(config.env)
    check_types(config)
    check_ranges(config)
    check_method_options(config)
    if config.total_steps < config.steps_per_update:
        raise ValueError(
            f"total_steps ({config.total_steps}) is smaller than one update "
            f"(t_max * envs = {config.steps_per_update})")
    if config.backend == "emulated" or config.staleness != "round-robin":
        from a3c_jax.core import staleness  # local: keeps config import light

        staleness.parse(config.staleness, check_files=False)   # the trace: defaults.resolve
    check_run_options(config)
    if config.is_sync and config.optimizer == "rmsprop_local":
        raise ValueError("optimizer rmsprop_local only applies to asynchronous runs; use "
                         "rmsprop with the synchronous driver")


def check_types(config) -> None:
    """Positive integers, finite numbers, distinct seeds and positive layer sizes."""
    for name in POSITIVE_INTS:
        value = getattr(config, name)
        if value is None and name in AUTO_FIELDS:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if (isinstance(config.lr_anneal_steps, bool) or not isinstance(config.lr_anneal_steps, int)
            or config.lr_anneal_steps < 0):
        raise ValueError(f"lr_anneal_steps must be an integer >= 0, got "
                         f"{config.lr_anneal_steps!r}")
    if config.log_interval < 0:
        raise ValueError(f"log_interval must be >= 0, got {config.log_interval!r}")
    if isinstance(config.eval_every, bool) or not isinstance(config.eval_every, int) or (
            config.eval_every < 0):
        raise ValueError(f"eval_every must be an integer >= 0 (0: no evaluation), got "
                         f"{config.eval_every!r}")
    if (isinstance(config.eval_episodes, bool) or not isinstance(config.eval_episodes, int)
            or config.eval_episodes <= 0):
        raise ValueError(f"eval_episodes must be a positive integer, got "
                         f"{config.eval_episodes!r}")
    if not config.seeds:
        raise ValueError("seeds must name at least one seed")
    if len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"seeds must be distinct, got {config.seeds!r}")
    if not config.hidden or any(h <= 0 for h in config.hidden):
        raise ValueError(f"hidden sizes must be positive, got {config.hidden!r}")
    for name in FINITE:
        value = getattr(config, name)
        if value is None and name in AUTO_FIELDS:
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")

def check_ranges(config) -> None:
    """The ranges of the numeric fields (auto fields only once they are set)."""
    if config.lr is not None and config.lr <= 0:
        raise ValueError(f"lr must be positive, got {config.lr!r}")
    if config.gamma is not None and not 0.0 <= config.gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {config.gamma!r}")
    if not 0.0 <= config.gae_lambda <= 1.0:
        raise ValueError(f"gae_lambda must lie in [0, 1], got {config.gae_lambda!r}")
    if not 0.0 <= config.rms_decay < 1.0:
        raise ValueError(f"rms_decay must lie in [0, 1), got {config.rms_decay!r}")
    if config.rms_eps <= 0:
        raise ValueError(f"rms_eps must be positive, got {config.rms_eps!r}")
    if not 0.0 <= config.momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {config.momentum!r}")
    for name in ("max_grad_norm", "value_coef", "entropy_coef"):
        if getattr(config, name) is not None and getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)!r}")
    if config.reward_scale is not None and config.reward_scale <= 0:
        raise ValueError(f"reward_scale must be positive, got {config.reward_scale!r}")
    if not 0.0 <= config.repeat_action_probability <= 1.0:
        raise ValueError("repeat_action_probability must lie in [0, 1], got "
                         f"{config.repeat_action_probability!r}")
    if config.eps_final > 1.0:
        raise ValueError(f"eps_final must be <= 1 (negative = sampled), got {config.eps_final!r}")
    for name, low in (("noop_max", 0), ("max_episode_frames", 1), ("max_restarts", 0)):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def check_method_options(config) -> None:
    """Switches, segments, how the loss combines, and what applies to which method."""
    for name in SWITCHES:
        value = getattr(config, name)
        if not (isinstance(value, bool) or (value is None and name in AUTO_FIELDS)):
            raise ValueError(f"{name} must be a bool, got {value!r}")
    if config.segments not in SEGMENTS:
        raise ValueError(f"segments must be one of {', '.join(SEGMENTS)}, got "
                         f"{config.segments!r}")
    if config.combine is not None and config.combine not in COMBINES:
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
    if config.segments == "until-terminal" and config.env.startswith("ALE/"):
        # The unroll steps every environment t_max times and discards what follows a
        # segment's end; an ALE game is a side-effecting foreign call, so it would go on
        # playing past the end the learner saw (lives lost that no transition records).
        raise ValueError("segments until-terminal is not available for ALE games (the games "
                         "would be advanced past each segment's end); use fixed segments")
    if config.algo == "a2c" and config.backend in ("processes", "ray", "emulated"):
        raise ValueError(f"backend {config.backend} runs asynchronous workers; a2c is the "
                         "synchronous method (a3c is its asynchronous form)")


def check_run_options(config) -> None:
    for name in ("log_seconds", "checkpoint_s"):
        value = getattr(config, name)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value < 0):
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    for name in ("overwrite", "resume"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be a bool, got {getattr(config, name)!r}")
    if config.overwrite and config.resume:
        raise ValueError("overwrite and resume exclude each other: overwrite clears the run "
                         "directory, resume continues it")
    check_action_space(config)
    if config.resume and config.is_sync and config.env.startswith("ALE/"):
        raise ValueError("resume: a synchronous run on an Atari game cannot be resumed (its "
                         "emulators' state is not saved); start it again")


def check_action_space(config) -> None:
    """Every algorithm on every action space it supports, and a clear refusal otherwise: the
    value-based methods (one-step Q, SARSA, n-step Q) take an argmax over discrete actions."""
    from a3c_jax.core import envs  # local: keeps config import light

    if config.algo in VALUE_ALGOS and not envs.is_discrete(config.env):
        raise ValueError(f"algo {config.algo} needs a discrete action space, and env "
                         f"{config.env} has continuous actions; use a3c (or a2c), whose "
                         f"Gaussian policy acts on continuous actions")


def check_loss_fn(config, loss_fn) -> None:
    """Refuse a ``loss_fn`` the chosen backend cannot send to its worker processes."""
    if loss_fn is None or config.is_sync or config.backend not in ("processes", "ray"):
        return
    import pickle
    import sys

    name = getattr(loss_fn, "__qualname__", repr(loss_fn))
    hint = ("define it at the top level of a .py module and import it, or use --backend "
            "threads")
    if config.backend == "processes":
        try:
            pickle.dumps(loss_fn)
        except Exception as err:  # noqa: BLE001 - any pickling failure means the same
            raise ValueError(f"loss_fn: {name} cannot be sent to worker processes (backend "
                             f"processes pickles it: {err}); {hint}") from None
        main = sys.modules.get("__main__")
        if getattr(loss_fn, "__module__", None) == "__main__" and not getattr(
                main, "__file__", None):
            raise ValueError(f"loss_fn: {name} is defined in a notebook or an interactive "
                             f"session, which worker processes (backend processes) cannot "
                             f"import; {hint}")
    else:
        try:
            from ray import cloudpickle
        except ImportError:
            return   # the Ray backend itself says that Ray is missing
        try:
            cloudpickle.dumps(loss_fn)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"loss_fn: {name} cannot be sent to Ray workers ({err}); "
                             f"{hint}") from None
