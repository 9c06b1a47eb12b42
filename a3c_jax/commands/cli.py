"""The command line of a ``Config``: its groups as ``--help``'s sections, with the flags users type.

``Config`` is made of six frozen group dataclasses (``a3c_jax.config.groups``); tyro renders
each as a section whose heading is the group (``optimisation options``), its description the
group's docstring, and each flag's help the field's docstring. ``tyro.conf.OmitArgPrefixes``
keeps the flags flat (``--lr``, ``--num-envs``, not ``--optimisation.lr``).

``Config.validate`` names fields (``num_envs must be ...``); ``flag_message`` rewrites such a
message with the flags a user typed (``--num-envs must be ...``), and ``parse_config`` exits
with status 2 and that message before anything compiles.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated, Sequence, TypeVar

import tyro

from a3c_jax.config.schema import FIELD_NAMES, Config

T = TypeVar("T")


def flag(name: str) -> str:
    """The command-line flag of a Config field: ``num_envs`` -> ``--num-envs``."""
    return "--" + name.replace("_", "-")


def flag_message(message: str, names: Sequence[str] | None = None) -> str:
    """``message`` with Config field names written as flags. A name with an underscore is
    replaced wherever it stands; a one-word name (``lr``, ``env``) only where the message
    starts with it or quotes it (````lr````), so prose such as "env steps" is kept."""
    names = sorted(names or FIELD_NAMES, key=len, reverse=True)
    message = re.sub(r"``(\w+)``", lambda m: flag(m[1]) if m[1] in names else m[0], message)
    compound = [n for n in names if "_" in n]
    if compound:
        message = re.sub(r"(?<![\w-])(" + "|".join(compound) + r")\b",
                         lambda m: flag(m[1]), message)
    first = re.match(r"(\w+)\b", message)
    if first and first[1] in names:
        message = flag(first[1]) + message[first.end():]
    return message


def parse(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None,
          default: T | None = None, prog: str | None = None) -> T:
    """tyro's parse of ``cls`` (a ``Config`` or a command's arguments holding one) with
    nested groups' flags unprefixed: ``--lr``, not ``--optimisation.lr``."""
    prog = prog or os.path.basename(sys.argv[0])   # "a3c-train", not its full path
    return tyro.cli(Annotated[cls, tyro.conf.OmitArgPrefixes], args=argv,
                    description=description, default=default, prog=prog)


def exit_invalid(err: ValueError) -> None:
    """Exit with status 2 and ``err`` naming flags (a bad value, before anything compiles)."""
    print(f"error: invalid config: {flag_message(str(err))}", file=sys.stderr)
    raise SystemExit(2) from None


def parse_config(argv: Sequence[str] | None = None, description: str | None = None,
                 defaults: Config | None = None, prog: str | None = None) -> Config:
    """The validated Config of a command line. ``--help`` prints the grouped options; a bad
    value exits with status 2 and a message naming its flag, before anything compiles."""
    config = parse(Config, argv, description, defaults or Config(), prog)
    try:
        return config.validate()
    except ValueError as err:
        exit_invalid(err)
        raise   # not reached
