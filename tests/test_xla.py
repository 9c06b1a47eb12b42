"""The XLA:CPU flag ``import a3c_jax`` sets (see a3c_jax/_xla.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from a3c_jax import _xla

FLAG = _xla.FLAGS[0]


@pytest.fixture
def fresh_backend(monkeypatch):
    """As if JAX had not opened a backend yet (this test process has one open)."""
    from jax._src import xla_bridge

    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.delenv("A3C_JAX_KEEP_XLA_FLAGS", raising=False)


def test_appends_the_flag_and_keeps_other_flags(fresh_backend, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert _xla.configure() == [FLAG]
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", FLAG]
    assert _xla.configure() == []  # idempotent


def test_a_users_own_setting_and_the_opt_out_win(fresh_backend, monkeypatch):
    mine = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    monkeypatch.setenv("XLA_FLAGS", mine)
    assert _xla.configure() == [] and os.environ["XLA_FLAGS"] == mine
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.setenv("A3C_JAX_KEEP_XLA_FLAGS", "1")
    assert _xla.configure() == [] and os.environ["XLA_FLAGS"] == ""


def test_warns_when_jax_started_first(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")
    monkeypatch.delenv("A3C_JAX_KEEP_XLA_FLAGS", raising=False)
    import jax

    jax.devices()  # the backend is open
    with pytest.warns(RuntimeWarning, match="imported after JAX initialised"):
        assert _xla.configure() == []
    assert os.environ["XLA_FLAGS"] == ""


def test_import_sets_it_for_the_process_and_its_children():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS",
                                                           "A3C_JAX_KEEP_XLA_FLAGS")}
    code = "import a3c_jax, os; print(os.environ['XLA_FLAGS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert FLAG in out.stdout.split()
