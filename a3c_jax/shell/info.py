"""run.json: what a run directory says about the run that wrote it.

Written atomically when the run starts (``status`` "running") and again when it ends:

* ``status``: running, completed, interrupted (``signal``: SIGINT or SIGTERM), diverged
  (``diverged``: which seed, at which env step) or failed (``error``: the exception's type
  and message); ``nonfinite``: per seed, the updates skipped for a non-finite gradient;
  ``restarts``: per seed, the worker processes started again (worker, ``time_s`` on the
  records' clock, T, cause; ``--max-restarts``); a run killed with SIGKILL or by the
  out-of-memory killer stays "running" with a ``pid`` that no longer exists;
* ``started`` / ``ended`` (ISO 8601, local time with offset), ``pid``, ``host``, ``argv`` (the
  command line), ``total_steps``, ``resume`` (whether this invocation continued a run);
* the software and machine: ``a3c_jax`` version, ``git_commit`` and ``git_dirty`` of the
  package's checkout when it is one, ``python``, ``jax`` and ``jaxlib`` versions, ``device``
  (JAX's platform, device kind and count) and ``cpu_count``;
* ``history``: the same record of every earlier invocation on this directory (resumes).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from a3c_jax.shell import files as runlog

FILENAME = "run.json"
INT_COLUMNS = {"metrics.csv": ("seed", "env_steps", "episodes"),
               "updates.csv": ("seed", "worker", "update", "env_steps", "version_read",
                               "version_written", "staleness", "nonfinite")}


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "--no-optional-locks", *args],
                              cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None


def software() -> dict:
    """Versions, the package's git commit, the JAX device and the core count."""
    from importlib import metadata

    import jax

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    head = _git("rev-parse", "HEAD")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else None
    dirty = None
    if commit:
        diff = _git("diff", "--quiet", "HEAD", "--")
        dirty = None if diff is None else diff.returncode == 1
    devices = jax.devices()
    return {"a3c_jax": version("a3c_jax"), "git_commit": commit, "git_dirty": dirty,
            "python": platform.python_version(), "jax": jax.__version__,
            "jaxlib": version("jaxlib"),
            "device": {"platform": devices[0].platform, "kind": devices[0].device_kind,
                       "count": len(devices)},
            "cpu_count": os.cpu_count()}


def read(run_dir: str | os.PathLike) -> dict:
    """run.json of a run directory ({} when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / FILENAME).read_text())
    except (OSError, ValueError):
        return {}


def _write(run_dir: Path, info: dict) -> None:
    runlog.atomic_write_text(run_dir / FILENAME, json.dumps(info, indent=2) + "\n")


def started(run_dir: Path, config, argv=None) -> dict:
    """Write run.json for a run that starts now; the record (kept by the caller)."""
    earlier = read(run_dir) if config.resume else {}
    history = earlier.pop("history", []) + ([earlier] if earlier else [])
    info = {"status": "running", "started": _now(), "ended": None, "pid": os.getpid(),
            "host": socket.gethostname(), "argv": list(sys.argv if argv is None else argv),
            "total_steps": config.total_steps, "resume": bool(config.resume),
            **software(), "signal": None, "error": None, "history": history}
    _write(run_dir, info)
    return info


def finished(run_dir: Path, info: dict, status: str, error: BaseException | None = None,
             signum: int | None = None, diverged: str | None = None,
             nonfinite: dict | None = None, restarts: dict | None = None) -> None:
    """Rewrite run.json with the run's outcome."""
    import signal

    info.update(status=status, ended=_now(),
                signal=None if signum is None else signal.Signals(signum).name,
                error=None if error is None else f"{type(error).__name__}: {error}",
                diverged=diverged,
                nonfinite={str(s): int(n) for s, n in (nonfinite or {}).items()},
                restarts={str(s): list(e) for s, e in (restarts or {}).items()})
    _write(run_dir, info)


def finished_or_say(run_dir: Path, info: dict, status: str, **outcome) -> OSError | None:
    """``finished``; when run.json cannot be written (a full disk), say so on stderr, one
    line, and return the error."""
    try:
        finished(run_dir, info, status, **outcome)
    except OSError as err:
        print(f"error: {err}; run.json does not record that the run {status}",
              file=sys.stderr, flush=True)
        return err
    return None


def typed_row(row: dict, file: str = "metrics.csv") -> dict:
    """A row read back from metrics.csv or updates.csv with its numbers as numbers."""
    out = {}
    for k, v in row.items():
        if k == "algo" or v is None:
            out[k] = v
        elif k in INT_COLUMNS[file]:
            out[k] = int(float(v)) if v != "" else 0
        else:
            out[k] = float(v) if v != "" else math.nan
    return out
