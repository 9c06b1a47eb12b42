"""The grouped command line of Config (a3c_jax.commands.cli): every field has its flag in its
group's section, help comes from the field's docstring, and errors name flags, not fields."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re

import pytest

from a3c_jax.commands import cli
from a3c_jax.config.schema import FIELD_NAMES, GROUPS, Config

HEADINGS = ("environment", "algorithm", "optimisation", "parallelism", "network", "output")


@pytest.fixture(scope="module")
def help_text():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as exit_info:
        cli.parse_config(["--help"], description="Train one method.")
    assert exit_info.value.code == 0
    return buf.getvalue()


def _sections(text: str) -> dict[str, str]:
    """Help text split at its group headings ("╭─ network options ─..." on a terminal,
    " network options" otherwise)."""
    parts = re.split(r"(?m)^(?:╭─)? ?([a-z][a-z ]*?) options\b.*$", text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_help_has_the_named_groups_in_order(help_text):
    sections = _sections(help_text)
    assert [s for s in sections if s != "options"][:len(HEADINGS)] == list(HEADINGS)
    assert "--lr " in sections["optimisation"] and "--workers " in sections[
        "parallelism"]
    assert "--hidden " in sections["network"] and "--num-envs " in sections["environment"]
    assert "--no-progress" in sections["output"]
    assert "--tensorboard" in sections["output"]


def test_every_config_field_has_its_flag_in_the_help(help_text):
    flags = set(re.findall(r"--[a-z0-9-]+", help_text))
    for name in FIELD_NAMES:
        assert cli.flag(name) in flags, name


def test_help_is_the_field_docstring_with_flags(help_text):
    flat = " ".join(help_text.replace("│", " ").split())
    assert "over ``num_envs`` lockstep environments" in flat   # backend's docstring
    assert "Segment length: environment steps per update" in flat


def test_every_field_is_declared_in_exactly_one_group():
    declared = [f.name for cls in GROUPS.values() for f in dataclasses.fields(cls)]
    assert len(declared) == len(set(declared)) == len(FIELD_NAMES)
    assert not set(declared) & set(GROUPS)   # a group's name never hides a flat field
    config = Config(lr=1e-3, hidden=(8,))
    assert config.optimisation.lr == config.lr == 1e-3 and config.network.hidden == (8,)
    with pytest.raises(TypeError, match="nonsense"):
        Config(nonsense=1)


def test_parse_round_trips_to_a_flat_config():
    config = cli.parse_config(["--algo", "a3c", "--workers", "3", "--lr", "1e-3", "--seeds",
                               "4", "5", "--hidden", "32", "--no-progress", "--obs-norm",
                               "True"])
    assert config == Config(algo="a3c", workers=3, lr=1e-3, seeds=(4, 5), hidden=(32,),
                            progress=False, obs_norm=True)
    assert cli.parse_config([]) == Config()


def test_defaults_can_be_another_config():
    base = Config(total_steps=1234, env="Pendulum-v1")
    config = cli.parse_config(["--seeds", "1"], defaults=base)
    assert (config.total_steps, config.env, config.seeds) == (1234, "Pendulum-v1", (1,))


@pytest.mark.parametrize("message, expected", [
    ("num_envs must be a positive integer, got 0", "--num-envs must be a positive integer, got 0"),
    ("lr must be finite, got nan", "--lr must be finite, got nan"),
    ("env: unknown environment 'X'", "--env: unknown environment 'X'"),
    ("total_steps (3) is smaller than one update (t_max * envs = 80)",
     "--total-steps (3) is smaller than one update (--t-max * envs = 80)"),
    # one-word names only at the start or quoted: prose keeps "env steps", "seeds"
    ("stop_window must hold 2 env steps for all seeds", "--stop-window must hold 2 env steps "
                                                         "for all seeds"),
    ("use ``lr`` with ``workers``", "use --lr with --workers"),
])
def test_flag_message(message, expected):
    assert cli.flag_message(message) == expected


@pytest.mark.parametrize("argv, flag", [
    (["--num-envs", "0"], "--num-envs"),
    (["--gamma", "2"], "--gamma"),
    (["--total-steps", "3"], "--total-steps"),
    (["--rms-eps", "-1"], "--rms-eps"),
])
def test_invalid_values_exit_2_naming_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_config(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid config: ") and flag in err, err
