"""The installed commands ([project.scripts]): each runs its package module (the one its
experiments/ script runs: the same help text, checked for a3c-train, whose script the other
tests run), and a3c-train trains a tiny run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, COLUMNS="100", JAX_PLATFORMS="cpu")


def command(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed next to {sys.executable}: pip install -e .")
    return path


def script_of(name: str) -> Path:
    """experiments/<module>.py for the command whose entry point is commands.<module>."""
    module = SCRIPTS[name].split(":")[0].rsplit(".", 1)[-1]
    return REPO / "experiments" / f"{module}.py"


@pytest.fixture(scope="session")
def helps(tmp_path_factory):
    """``--help`` of every command and of its script, run at once (session scope: built once
    even when other files' tests run between this file's on the same process)."""
    base = tmp_path_factory.mktemp("helps")
    procs = {}
    runs = [(name, "command", [str(command(name))]) for name in SCRIPTS]
    runs.append(("a3c-train", "script", [sys.executable, str(script_of("a3c-train"))]))
    for name, kind, argv in runs:
        out = open(base / f"{name}.{kind}", "w+")
        procs[name, kind] = (subprocess.Popen([*argv, "--help"], cwd=REPO, env=ENV,
                                              stdout=out, stderr=subprocess.STDOUT), out)
    texts = {}
    for key, (proc, out) in procs.items():
        assert proc.wait(timeout=300) == 0, key
        out.seek(0)
        texts[key] = out.read()
        out.close()
    return texts


def _body(text: str) -> str:
    return re.sub(r"^usage: \S+", "usage: PROG", text.strip())


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_command_runs_its_module(helps, name):
    module = SCRIPTS[name].split(":")[0]
    assert script_of(name).exists()
    assert f"from {module} import" in script_of(name).read_text()   # the script is a wrapper
    text = helps[name, "command"]
    assert re.match(rf"usage: (\S*/)?{name} ", text), text[:200]
    assert "--help" in text and "show this help message" in text


def test_train_command_and_script_are_the_same_program(helps):
    assert _body(helps["a3c-train", "command"]) == _body(helps["a3c-train", "script"])


def test_train_help_is_grouped(helps):
    text = helps["a3c-train", "command"]
    for heading in ("environment", "algorithm", "optimisation", "parallelism", "network",
                    "output"):
        assert re.search(rf"(?m)^\s*(?:╭─ )?{heading} options", text), heading


def test_a3c_train_trains(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([str(command("a3c-train")), "--total-steps", "1000", "--num-envs",
                           "2", "--no-progress", "--out", str(out)], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("done: a2c on CartPole-v1, 1/1 seed, 1k env steps")
    assert (out / "metrics.csv").exists() and (out / "params_seed0.msgpack").exists()
