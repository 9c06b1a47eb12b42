"""A signal during compilation stops the run at once (``_xla.interruptible``), instead of
after the compile: the compile is made slow on purpose (a sleep before it), the first SIGINT
arrives during it, and the run ends interrupted within a fraction of the compile's time."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import threading
import time

import jax
import pytest

from a3c_jax import _xla
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.worker import AsyncWorker
from a3c_jax.shell.runner import run

SLOW_S = 30.0   # the compile's added time; the run must stop long before it ends


def test_interruptible_returns_and_raises_what_fn_does():
    assert _xla.interruptible(lambda: 41 + 1) == 42
    with pytest.raises(ZeroDivisionError):
        _xla.interruptible(lambda: 1 / 0)
    t = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        _xla.interruptible(lambda: time.sleep(SLOW_S), should_stop=lambda: signal.SIGINT)
    assert time.perf_counter() - t < 2.0


def block_in_c(seconds: float) -> None:
    """Wait ``seconds`` inside one C call that a signal does not cut short, as an XLA compile
    does: ``pthread_cond_timedwait`` resumes after a signal's (C-level) handler, so Python
    runs its own handler only once the call returns. (``time.sleep`` would return early.)"""
    libc = ctypes.CDLL(None, use_errno=True)

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    mutex, cond = ctypes.create_string_buffer(64), ctypes.create_string_buffer(64)  # zeroed:
    end = time.time() + seconds                                 # the static initialisers
    deadline = Timespec(int(end), int((end - int(end)) * 1e9))  # to the nanosecond: a whole
    libc.pthread_mutex_lock(mutex)                               # second would cut it short
    while time.time() < end:   # ETIMEDOUT ends it; spurious wake-ups are retried
        libc.pthread_cond_timedwait(cond, mutex, ctypes.byref(deadline))
    libc.pthread_mutex_unlock(mutex)


def test_block_in_c_is_not_cut_short_by_a_signal():
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signal handlers need the main thread")
    seen = []
    old = signal.signal(signal.SIGUSR1, lambda *a: seen.append(time.perf_counter()))
    try:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        t = time.perf_counter()
        timer.start()
        block_in_c(1.5)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert time.perf_counter() - t >= 1.0 and seen and seen[0] - t >= 1.0


def _slow(original, started: list):
    """``original`` behind ``SLOW_S`` seconds of ``block_in_c``; a SIGINT is sent half a
    second into the first such compile (so it arrives during the compile, not before)."""
    def slow(*args, **kwargs):
        if not started:
            started.append(time.perf_counter())
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        block_in_c(SLOW_S)
        return original(*args, **kwargs)
    return slow


@pytest.mark.parametrize("flags", [dict(algo="a2c", num_envs=2),
                                   dict(algo="a3c", workers=2),
                                   dict(algo="a3c", workers=2, backend="emulated")],
                         ids=["sync", "threads", "emulated"])
def test_sigint_during_compile_stops_the_run_at_once(tmp_path, monkeypatch, flags):
    if threading.current_thread() is not threading.main_thread():
        pytest.fail("signal handlers need the main thread")
    started: list = []
    monkeypatch.setattr(jax.stages.Lowered, "compile",
                        _slow(jax.stages.Lowered.compile, started))
    monkeypatch.setattr(AsyncWorker, "compile", _slow(AsyncWorker.compile, started))
    config = Config(total_steps=2_000, seeds=(0,), progress=False, out=str(tmp_path / "run"),
                    **flags)
    try:
        got = run(config)
    except KeyboardInterrupt:   # a driver may let the first signal through: also a stop
        got = None
    assert started, "the slow compile was never reached"
    took = time.perf_counter() - started[0]
    assert took < SLOW_S / 2, f"the run waited for the compile ({took:.1f} s)"
    assert got is None or got.interrupted
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "interrupted" and info["signal"] == "SIGINT"
