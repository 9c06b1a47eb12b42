"""The command line of a ``Config``: its fields in named groups, with the flags users type.

``Config`` stays one flat dataclass (every module reads ``config.lr``); the grouped command line
is generated from it. ``GROUPS`` assigns fields to groups (environment, algorithm, optimisation,
asynchronous workers, network, logging and output); a field no group names lands in ``other``,
so a field added to ``Config`` appears in ``--help`` without touching this module. Each flag's
help is the field's docstring, read from ``config.py``'s source (tyro would read it from the
generated classes, which have none), with ````field```` references written as flags. Flags stay
flat (``--lr``, ``--num-envs``): the group is only a heading.

``Config.validate`` names fields (``num_envs must be ...``); ``flag_message`` rewrites such a
message with the flags a user typed (``--num-envs must be ...``), and ``parse_config`` exits
with status 2 and that message before anything compiles.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import os
import re
import sys
import typing
from typing import Annotated, Sequence

import tyro

from a3c_jax.config import schema as config_module
from a3c_jax.config.schema import Config

GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "environment": ("The environment, the budget per seed and the seeds.",
                    ("env", "total_steps", "seeds", "num_envs", "vmap_seeds", "stop_return",
                     "stop_window", "repeat_action_probability", "life_loss_terminal",
                     "reward_clip", "noop_max", "max_episode_frames")),
    "algorithm": ("The method and its loss.",
                  ("algo", "t_max", "segments", "combine", "gamma", "gae_lambda", "value_coef",
                   "entropy_coef", "reward_scale", "reward_norm", "adv_norm", "obs_norm",
                   "eps_final", "eps_anneal_steps", "target_interval")),
    "optimisation": ("The optimiser and its learning rate.",
                     ("lr", "lr_anneal", "optimizer", "rms_decay", "rms_eps", "momentum",
                      "max_grad_norm")),
    "asynchronous workers": ("Where and how the asynchronous actor-learners run.",
                             ("backend", "workers", "envs_per_worker", "store_mode",
                              "staleness", "ray_address")),
    "network": ("The actor-critic or Q-network.", ("hidden", "torso", "shared_torso",
                                                   "recurrent", "lstm_size")),
    "logging and output": ("The run directory, what is logged, and where it is shown.",
                           ("out", "overwrite", "resume", "checkpoint_s", "log_interval",
                            "log_seconds", "progress", "tensorboard", "wandb",
                            "wandb_project")),
}
OTHER = "other"
"""The group of fields no entry of ``GROUPS`` names."""


def flag(name: str) -> str:
    """The command-line flag of a Config field: ``num_envs`` -> ``--num-envs``."""
    return "--" + name.replace("_", "-")


def field_docs(cls: type = Config) -> dict[str, str]:
    """Each field's attribute docstring (the string literal after its annotation)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def flag_message(message: str, names: Sequence[str] | None = None) -> str:
    """``message`` with Config field names written as flags. A name with an underscore is
    replaced wherever it stands; a one-word name (``lr``, ``env``) only where the message
    starts with it or quotes it (````lr````), so prose such as "env steps" is kept."""
    names = sorted(names or _field_names(), key=len, reverse=True)
    message = re.sub(r"``(\w+)``", lambda m: flag(m[1]) if m[1] in names else m[0], message)
    compound = [n for n in names if "_" in n]
    if compound:
        message = re.sub(r"(?<![\w-])(" + "|".join(compound) + r")\b",
                         lambda m: flag(m[1]), message)
    first = re.match(r"(\w+)\b", message)
    if first and first[1] in names:
        message = flag(first[1]) + message[first.end():]
    return message


def group_of(name: str) -> str:
    for group, (_, names) in GROUPS.items():
        if name in names:
            return group
    return OTHER


def _grouped_fields() -> dict[str, list[str]]:
    """Config's fields by group, in GROUPS' order, then the rest in Config's order."""
    present = set(_field_names())
    grouped = {g: [n for n in names if n in present] for g, (_, names) in GROUPS.items()}
    grouped[OTHER] = [n for n in _field_names() if group_of(n) == OTHER]
    return {g: names for g, names in grouped.items() if names}


def _ident(group: str) -> str:
    return group.replace(" ", "_")


@functools.lru_cache(maxsize=8)
def grouped_class(defaults: Config = Config()) -> type:
    """A dataclass with one nested dataclass per group (flags unprefixed), whose defaults are
    ``defaults``' values; ``to_config`` turns a parsed instance back into a Config."""
    hints = typing.get_type_hints(Config, vars(config_module))
    docs = field_docs()
    top = []
    for group, names in _grouped_fields().items():
        members = []
        for name in names:
            help_text = re.sub(r"``(.+?)``", r"'\1'", flag_message(docs.get(name, "")))
            members.append((name, Annotated[hints[name], tyro.conf.arg(help=help_text)],
                            dataclasses.field(default=getattr(defaults, name))))
        cls = dataclasses.make_dataclass(f"{_ident(group).title().replace('_', '')}Options",
                                         members, frozen=True)
        description = GROUPS[group][0] if group in GROUPS else "Fields not in another group."
        top.append((_ident(group),
                    Annotated[cls, tyro.conf.OmitArgPrefixes,
                              tyro.conf.arg(name=group, help=description)],
                    dataclasses.field(default_factory=cls)))
    return dataclasses.make_dataclass("ConfigOptions", top, frozen=True)


def to_config(parsed) -> Config:
    """The flat Config of a ``grouped_class`` instance."""
    values = {}
    for group in dataclasses.fields(parsed):
        sub = getattr(parsed, group.name)
        values.update({f.name: getattr(sub, f.name) for f in dataclasses.fields(sub)})
    return Config(**values)


def parse_config(argv: Sequence[str] | None = None, description: str | None = None,
                 defaults: Config = Config(), prog: str | None = None) -> Config:
    """The validated Config of a command line. ``--help`` prints the grouped options; a bad
    value exits with status 2 and a message naming its flag, before anything compiles."""
    prog = prog or os.path.basename(sys.argv[0])   # "a3c-train", not its full path
    parsed = tyro.cli(grouped_class(defaults), args=argv, description=description, prog=prog)
    config = to_config(parsed)
    try:
        return config.validate()
    except ValueError as err:
        print(f"error: invalid config: {flag_message(str(err))}", file=sys.stderr)
        raise SystemExit(2) from None
