"""The documents' commands work: README.md and docs/*.md, read as a user would paste them.

Every ``a3c-*``, ``python experiments/...`` and ``python benchmarks/...`` line of a fenced shell
block uses only flags its command's ``--help`` lists (one ``--help`` per distinct command, all
in one subprocess); the commands the documents keep at a tiny budget (``--total-steps`` of at
most ``SHORT_STEPS``) are run for real; and the README's Python example runs with its budget
rewritten to ``EXAMPLE_STEPS``. Outputs go under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHORT_STEPS = 5000          # a command at this budget or below is run, not only parsed
MAX_SHORT = 2               # with the Python example, three real runs: the test stays short
EXAMPLE_STEPS = 2000

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def fenced(path: Path, langs: tuple[str, ...]) -> list[str]:
    """The bodies of the fenced blocks of ``path`` whose language is one of ``langs``."""
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang in langs]


def shell_lines(body: str) -> list[str]:
    """One string per command: continuation lines joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = (line.split(" #", 1)[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def command_of(argv: list[str]) -> tuple[str, list[str]] | None:
    """(the command's key, its arguments) for a command the documents promise, else None.

    The key is an installed command's name (``a3c-train``) or a script's path relative to the
    repository (``experiments/train.py``)."""
    if argv and argv[0] in _SCRIPTS:
        return argv[0], argv[1:]
    if len(argv) > 1 and argv[0] == "python" and argv[1].startswith(("experiments/",
                                                                    "benchmarks/")):
        return argv[1], argv[2:]
    return None


def doc_commands() -> list[tuple[str, str, list[str]]]:
    """(where, key, args) for every promised command in the documents, in reading order."""
    found = []
    for path in DOCS:
        for body in fenced(path, ("bash", "sh", "shell", "console")):
            for line in shell_lines(body):
                parsed = command_of(shlex.split(line))
                if parsed:
                    found.append((f"{path.name}: {line}", *parsed))
    return found


def launcher(key: str) -> list[str]:
    """The argv prefix that runs ``key`` from this checkout (installed or not)."""
    if key in _SCRIPTS:
        module, fn = _SCRIPTS[key].split(":")
        code = (f"import sys; from {module} import {fn} as main; sys.argv[0] = {key!r}; "
                "sys.exit(main())")
        return [sys.executable, "-c", code]
    return [sys.executable, str(REPO / key)]


def child_env() -> dict[str, str]:
    # wide help: no flag is wrapped or cut by the terminal's width
    return dict(os.environ, COLUMNS="400",
                PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


_HELP_ALL = r"""
import contextlib, importlib, io, json, runpy, sys
scripts, out_path = json.loads(sys.argv[1]), sys.argv[2]
helps = {}
for key, target in scripts.items():
    buf = io.StringIO()
    sys.argv = [key, "--help"]
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            if ":" in target:
                module, fn = target.split(":")
                getattr(importlib.import_module(module), fn)()
            else:
                runpy.run_path(target, run_name="__main__")
        except SystemExit:
            pass
    helps[key] = buf.getvalue()
with open(out_path, "w") as f:
    json.dump(helps, f)
"""


@pytest.fixture(scope="module")
def helps(tmp_path_factory) -> dict[str, str]:
    """``--help`` of every distinct command in the documents, all in one process."""
    keys = sorted({key for _, key, _ in doc_commands()})
    missing = [k for k in keys if k not in _SCRIPTS and not (REPO / k).is_file()]
    assert not missing, f"the documents name commands that do not exist: {missing}"
    targets = {k: _SCRIPTS.get(k, str(REPO / k)) for k in keys}
    out = tmp_path_factory.mktemp("helps") / "helps.json"
    proc = subprocess.run([sys.executable, "-c", _HELP_ALL, json.dumps(targets), str(out)],
                          cwd=REPO, env=child_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def flags_of(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def total_steps(args: list[str]) -> int | None:
    for flag, value in zip(args, args[1:]):
        if flag == "--total-steps":
            return int(value)
    return None


def short_commands() -> list[tuple[str, str, list[str]]]:
    return [c for c in doc_commands() if (total_steps(c[2]) or SHORT_STEPS + 1) <= SHORT_STEPS]


def test_the_documents_hold_commands_and_a_short_one_in_the_readme():
    where = [w for w, _, _ in doc_commands()]
    assert any(w.startswith("README.md") for w in where)
    assert len({key for _, key, _ in doc_commands()}) >= 10
    short = short_commands()
    assert any(w.startswith("README.md") for w, _, _ in short), "README: no command to run"
    assert len(short) <= MAX_SHORT, f"keep at most {MAX_SHORT} tiny-budget commands: {short}"


def test_every_documented_flag_is_in_its_commands_help(helps):
    unknown = []
    for where, key, args in doc_commands():
        listed = set(re.findall(r"--[A-Za-z0-9][\w-]*", helps[key]))
        assert "--help" in listed, f"{key} --help printed no usage:\n{helps[key][-2000:]}"
        unknown += [f"{where}: {flag}" for flag in sorted(flags_of(args) - listed)]
    assert not unknown, "flags the commands do not have:\n" + "\n".join(unknown)


def test_the_short_commands_run(tmp_path):
    for where, key, args in short_commands():
        proc = subprocess.run([*launcher(key), *args, "--no-progress"], cwd=tmp_path,
                              env=child_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{where}\n{proc.stdout}\n{proc.stderr}"
        out = args[args.index("--out") + 1] if "--out" in args else None
        if out:
            assert (tmp_path / out / "metrics.csv").is_file(), where


def readme_example() -> str:
    (code,) = fenced(REPO / "README.md", ("python",))
    return code


def test_the_readme_example_runs_at_a_tiny_budget(tmp_path):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 10
    tiny, n = re.subn(r"total_steps=[\d_]+", f"total_steps={EXAMPLE_STEPS}", code)
    assert n == 1, "the example should set its budget once, as total_steps=..."
    proc = subprocess.run([sys.executable, "-c", tiny], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    figure = next(tmp_path.glob("runs/*/comparison.png"))
    assert figure.read_bytes()[:4] == b"\x89PNG"
    for label in ("a3c", "a2c"):
        assert (figure.parent / label / "metrics.csv").is_file(), label
