"""Checks of ``Config`` that need more than one field: run-directory options and which
methods an environment's action space admits (called by ``Config.validate``), and whether a
custom ``loss_fn`` can reach the workers of a backend (``rundir.prepare``). Each raises a
``ValueError`` whose message starts with the option it is about."""

from __future__ import annotations

import math

VALUE_ALGOS = ("q1", "sarsa", "nq")


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


def check_action_space(config) -> None:
    """Every algorithm on every action space it supports, and a clear refusal otherwise: the
    value-based methods (one-step Q, SARSA, n-step Q) take an argmax over discrete actions."""
    from a3c_jax import envs  # local: keeps config import light

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
