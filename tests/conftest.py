"""Shared fixtures and the suite's JAX settings.

Tests run on whatever JAX backend is present; no flags are needed. The suite shares one
persistent compilation cache (``.jax_cache/`` at the repository root, or
``$JAX_COMPILATION_CACHE_DIR``): many tests compile the same per-worker step in fresh
processes (CLI runs, worker processes, Ray actors, notebooks), and a cache hit turns a
multi-second XLA compile into a file read. Subprocesses inherit it through the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO_ROOT / ".jax_cache"))
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
