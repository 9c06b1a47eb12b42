"""Experiment configuration: one frozen, typed ``Config`` of six groups, validated at the edge.

``Config`` holds one frozen dataclass per group of ``a3c_jax.config.groups`` (environment,
algorithm, optimisation, parallelism, network, output), where every field is declared once with
its docstring; tyro renders the groups as ``--help``'s sections. Fields are read and written
flatly: ``Config(env="CartPole-v1", lr=1e-3)``, ``config.lr``, ``config.replace(lr=3e-3)``;
a group as a whole is ``config.optimisation``. Derived sizes are properties. ``validate``
(``a3c_jax.config.checks``) raises ``ValueError`` naming the offending field.

Per-method defaults: a field whose default is ``None`` (``AUTO_FIELDS``) means "auto".
``a3c_jax.config.defaults.resolve(config)`` validates the config once and returns a
``Resolved``: the same fields with every auto one set, so that everything below the run shell
takes a ``Resolved`` and never checks or resolves again. A value the user gave is always
kept; config.json holds the resolved values, flat.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from a3c_jax.config.groups import (  # noqa: F401 - the config's types, re-exported
    AUTO_FIELDS, FIELD_NAMES, GROUP_OF, GROUPS, SEGMENT_AUTO_FIELDS, VALUE_ALGOS, Algo, Algorithm,
    Backend, Combine,
    Environment, Network, Optimisation, OptimizerName, Output, Parallelism, Segments,
    StoreMode, Torso)

# Before ``combine`` (commit 6f47117) the loss had ``reduction`` over each env's segment (all
# of length t_max then), the N envs of an update averaged: "sum" was (1/N) sum_n sum_t l,
# "mean" (1/N) sum_n (1/t_max) sum_t l.
_OLD_MEAN = "env-mean"   # exactly the old "mean"


@dataclasses.dataclass(frozen=True, init=False)
class Config:
    """Configuration shared by the synchronous and asynchronous drivers: six groups of fields,
    read flatly (``config.lr``) and built from flat keywords (``Config(lr=1e-3)``)."""

    environment: Environment = dataclasses.field(default_factory=Environment)
    algorithm: Algorithm = dataclasses.field(default_factory=Algorithm)
    optimisation: Optimisation = dataclasses.field(default_factory=Optimisation)
    parallelism: Parallelism = dataclasses.field(default_factory=Parallelism)
    network: Network = dataclasses.field(default_factory=Network)
    output: Output = dataclasses.field(default_factory=Output)

    def __init__(self, **values: Any):
        """Groups by name (``optimisation=Optimisation(...)``) and fields by their flat names
        (``lr=1e-3``); a flat field overrides its group's value."""
        unknown = sorted(set(values) - set(GROUP_OF) - set(GROUPS))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(unknown)}")
        for name, cls in GROUPS.items():
            group = values.get(name) or cls()
            changes = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
            object.__setattr__(self, name, dataclasses.replace(group, **changes) if changes
                               else group)

    def __getattr__(self, name: str) -> Any:
        # Only called when ``name`` is not an attribute: a flat field is its group's.
        group = GROUP_OF.get(name)
        if group is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, group), name)

    def __repr__(self) -> str:
        changed = {n: v for n, v in self.to_dict().items() if v != _DEFAULTS[n]}
        return f"{type(self).__name__}({', '.join(f'{n}={v!r}' for n, v in changed.items())})"

    # --- derived sizes -------------------------------------------------------------------
    @property
    def is_sync(self) -> bool:
        """Runs on the synchronous driver: a2c, or any method with ``backend == "sync"``."""
        return self.algo == "a2c" or self.backend == "sync"

    @property
    def is_async(self) -> bool:
        return not self.is_sync

    @property
    def family(self) -> str:
        """"value" for q1 / sarsa / nq, "actor_critic" for a2c / a3c."""
        return "value" if self.algo in VALUE_ALGOS else "actor_critic"

    @property
    def batch_envs(self) -> int:
        """Environments stepped together by one update (N for sync, E for one worker)."""
        return self.envs_per_worker if self.is_async else self.num_envs

    @property
    def steps_per_update(self) -> int:
        return self.t_max * self.batch_envs

    @property
    def num_updates(self) -> int:
        """Sync: updates in the budget. Async: total updates over all workers."""
        return self.total_steps // self.steps_per_update

    # --- validation, updates, files ------------------------------------------------------
    def validate(self) -> "Config":
        """Raise ValueError naming the field if anything is invalid; return self otherwise.
        Reads no file (a staleness trace is read by ``defaults.resolve``)."""
        from a3c_jax.config import checks  # local: checks imports this module

        checks.check_config(self)
        return self

    def replace(self, **changes: Any) -> "Config":
        """A copy with flat fields (or whole groups) changed; a ``Resolved`` stays one."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every field by its flat name (what config.json holds)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """The config of a flat dict (config.json, ``to_dict``); also reads config.json files
        written before ``combine``, whose ``reduction`` maps to the combine of the same loss, and
        before ``lr_anneal_steps`` (0: their anneal spanned the budget)."""
        data = dict(data)
        legacy = data.pop("reduction", None)
        unknown = set(data) - set(FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        if "lr_anneal" in kwargs and "lr_anneal_steps" not in kwargs:
            kwargs["lr_anneal_steps"] = 0   # written when the anneal spanned the budget
        if legacy is not None and "combine" not in kwargs:
            kwargs["combine"] = combine_of_reduction(legacy, cls(**kwargs).batch_envs)
            if legacy == "sum" and kwargs["combine"] != "sum":
                kwargs.update(same_updates_at_step_mean(cls(**kwargs)))
        return cls(**kwargs)


def combine_of_reduction(reduction: str, batch_envs: int) -> str:
    """The ``combine`` whose loss is the old ``reduction``'s (module comment above ``Config``).

    mean: (1/N) sum_n (1/t_max) sum_t l is env-mean. sum: (1/N) sum_n sum_t l is ``sum`` when
    the update had one environment (N = 1, the paper's workers); with N > 1 no combine has
    its scale (sum is N times it, step-mean 1/t_max of it): step-mean is taken, and
    ``from_dict`` rescales the settings the scale matters to (``same_updates_at_step_mean``),
    so the updates are the old ones.
    """
    if reduction == "mean":
        return _OLD_MEAN
    if reduction == "sum":
        return "sum" if batch_envs == 1 else "step-mean"
    raise ValueError(f"reduction: expected sum or mean (config.json before combine), got "
                     f"{reduction!r}")


def same_updates_at_step_mean(config: "Config") -> dict:
    """The settings that make ``step-mean`` updates equal to the old ``sum``'s (N > 1): its
    loss was t_max times step-mean's, so every gradient d was t d. Clipping at M clips t d as
    d at M / t; RMSProp's d / sqrt(g + eps) (eps inside the root) is unchanged by d -> t d when
    eps -> eps / t^2; SGD (momentum included) is linear, so its lr is t times larger."""
    t = config.t_max
    changes: dict = {}
    if config.max_grad_norm > 0:
        changes["max_grad_norm"] = config.max_grad_norm / t
    if config.optimizer.startswith("rmsprop"):
        changes["rms_eps"] = config.rms_eps / t ** 2
    elif config.lr is not None:
        changes["lr"] = config.lr * t
    return changes


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Resolved(Config):
    """A validated ``Config`` whose auto fields are all set (``defaults.resolve`` makes one):
    what every driver and algorithm takes."""

    if typing.TYPE_CHECKING:   # the auto fields' types once resolved (declared in groups)
        lr: float
        gamma: float
        entropy_coef: float
        obs_norm: bool
        reward_scale: float
        reward_norm: bool
        shared_torso: bool
        target_interval: int
        eps_anneal_steps: int
        combine: str

    def __init__(self, **values: Any):
        super().__init__(**values)
        unset = [name for name in AUTO_FIELDS + SEGMENT_AUTO_FIELDS
                 if getattr(self, name) is None]
        if unset:
            raise ValueError(f"a resolved config needs every auto field; unset: {unset} "
                             "(a3c_jax.config.defaults.resolve)")


_DEFAULTS = Config().to_dict()
