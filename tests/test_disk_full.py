"""A run whose files cannot be written (a full disk, a file-size limit, an I/O error) stops
within seconds: exit status 1, one line naming the path and the errno, run.json "failed", the
last checkpoint whole; ``--resume`` continues from it once the files can be written.

A file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored) makes a write past it fail with
EFBIG, as a full disk makes it fail with ENOSPC."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from a3c_jax.config.schema import Config
from a3c_jax.shell import checkpoints, directory, files

REPO = Path(__file__).resolve().parents[1]
LIMIT = 400_000   # bytes: updates.csv passes it a few seconds in, after some checkpoints


# set in a small process that then becomes the run (both survive exec; no fork of this one)
LIMITED = ("import os, resource, signal, sys; "
           "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "   # the write raises EFBIG instead
           f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT})); "
           "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def train(*args: str, limited: bool = False) -> subprocess.CompletedProcess:
    head = [sys.executable, "-c", LIMITED] if limited else [sys.executable]
    return subprocess.run([*head, "experiments/train.py", *args], cwd=REPO,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"), capture_output=True,
                          text=True, timeout=600)


def test_a_write_past_a_size_limit_stops_the_run_and_resume_continues(tmp_path):
    out = tmp_path / "r"
    args = ("--algo", "a3c", "--backend", "threads", "--workers", "2", "--hidden", "8",
            "--total-steps", "300000", "--checkpoint-s", "0.5", "--no-progress",
            "--out", str(out))
    got = train(*args, limited=True)
    assert got.returncode == 1, got.stdout + got.stderr
    lines = [ln for ln in got.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in got.stderr, got.stderr
    assert "EFBIG" in lines[0] and str(out / "updates.csv") in lines[0], lines[0]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "EFBIG" in info["error"]
    saved = checkpoints.load(out)[0]   # whole, and short of the budget
    assert 0 < saved["env_steps"] < 300_000
    again = train("--resume", "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stdout + again.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "completed" and info["history"][-1]["status"] == "failed"
    assert checkpoints.load(out)[0]["env_steps"] >= 300_000


def test_run_json_that_cannot_be_written_is_said_on_stderr(tmp_path, monkeypatch, capsys):
    rd = directory.prepare(Config(out=str(tmp_path / "r"), progress=False))
    rd.start()

    def full(path, text):
        raise files.WriteError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(files, "atomic_write_text", full)
    with pytest.raises(files.WriteError, match="ENOSPC"):
        rd.finish("completed")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json" in err and "ENOSPC" in err


def test_a_short_append_is_finished_or_refused_with_the_path(tmp_path, monkeypatch):
    from a3c_jax.shell.sink import CsvAppender

    real, calls = os.write, []

    def short_then_full(fd, data):   # a write cut short at a limit, then a full disk
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, data[:5])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(files.WriteError) as got:
        CsvAppender(tmp_path).rows([{"seed": 0, "env_steps": 10}])
    assert len(calls) == 2 and got.value.errno == errno.ENOSPC
    assert str(got.value).startswith(f"cannot write {tmp_path / 'metrics.csv'}: ENOSPC")
