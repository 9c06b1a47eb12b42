"""Shared fixtures and the suite's JAX settings.

Tests run on whatever JAX backend is present; no flags are needed. The suite shares one
persistent compilation cache: many tests compile the same per-worker step in fresh processes
(CLI runs, worker processes, Ray actors, notebooks), and a cache hit turns a multi-second XLA
compile into a file read. It lives in the user's cache directory
(``$XDG_CACHE_HOME/a3c_jax/jax-tests``, by default ``~/.cache/a3c_jax/jax-tests``; set
``JAX_COMPILATION_CACHE_DIR`` to move it), so a fresh clone reuses what an earlier checkout on
the same machine compiled: an entry is keyed by the program, the flags and the jax version, so
a stale one is never used, and the oldest entries are evicted beyond 2 GB. Subprocesses inherit it through
the environment.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

_USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_USER_CACHE / "a3c_jax" / "jax-tests"))
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024 ** 3))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# Files whose module fixtures are expensive (a Ray instance, trained runs, CLI subprocesses):
# under ``-n 2 --dist loadgroup`` each runs whole on one process, so the fixture is built once.
_GROUPED = {"test_ray", "test_plotting", "test_scripts", "test_cli", "test_checkpoint",
            "test_commands", "test_video", "test_atari"}
LEARNING_TIMEOUT_S = 900


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook reads the groups off the items
def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.stem
        if name in _GROUPED:
            item.add_marker(pytest.mark.xdist_group(name))
        if item.get_closest_marker("learning") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LEARNING_TIMEOUT_S))


@pytest.fixture
def kill_at():
    """``kill_at(T, pid_of)``: an ``on_tick`` for ``train_seed`` that SIGKILLs the worker
    process ``pid_of(running)`` the first time the store's step counter reaches ``T``; the
    pid it killed is in its ``killed`` list."""
    def make(at_T: int, pid_of):
        killed: list[int] = []

        def on_tick(running, _per_worker):
            if not killed and running.T >= at_T:
                killed.append(pid_of(running))
                os.kill(killed[0], signal.SIGKILL)

        def check(got, config, cause: str):
            """The run completed its budget exactly with that worker restarted once (after
            the kill, for ``cause``); no update recorded twice. Returns the restart event and
            the versions written to the store that have no record."""
            assert got.stopped is None, got.stopped
            assert killed and len(got.restarts) == 1, got.restarts
            event = got.restarts[0]
            assert cause in event["cause"] and at_T <= event["T"] < config.total_steps
            assert config.total_steps <= got.T < config.total_steps + config.steps_per_update
            versions = [r.version_written for r in got.records]
            assert len(versions) == len(set(versions))   # none twice
            return event, set(range(1, got.lost["updates"] + 1)) - set(versions)

        on_tick.killed, on_tick.check = killed, check
        return on_tick

    return make
