"""Checks of ``Config`` that need more than one field: run-directory options and which
methods an environment's action space admits (called by ``Config.validate``), and whether a
custom ``loss_fn`` can reach the workers of a backend (``rundir.prepare``). Each raises a
``ValueError`` whose message starts with the option it is about."""

from __future__ import annotations

import math

VALUE_ALGOS = ("q1", "sarsa", "nq")


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
    for name, low in (("noop_max", 0), ("max_episode_frames", 1)):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


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
