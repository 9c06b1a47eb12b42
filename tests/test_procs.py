"""Process backend: workers in processes on a shared-memory store."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from a3c_jax.core import curves
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.backends.processes import SHM_PREFIX, WorkerProcessError
from a3c_jax.drivers.records import update_rows
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, WorkerError

CFG = Config(algo="a3c", backend="processes", workers=2, total_steps=4_000, seeds=(0,),
             progress=False, lr_anneal=False)


def segments():
    """This process's segments (other test processes may own some at the same time)."""
    mine = f"{SHM_PREFIX}{os.getpid()}_"
    return {n for n in os.listdir("/dev/shm") if n.startswith(mine)}


def test_process_backend_runs_and_cleans_up():
    before = segments()
    worker = AsyncWorker.from_config(CFG)
    got = train_seed(worker, 0)
    records = got.records
    assert got.stopped is None
    assert CFG.total_steps <= got.T < CFG.total_steps + CFG.steps_per_update
    assert len(records) == got.lost["updates"] == got.T // CFG.steps_per_update
    assert {r.worker for r in records} == {0, 1}
    assert sorted(r.version_written for r in records) == list(range(1, len(records) + 1))
    assert got.lost["lost_min"] == 0
    flat = got.flat_params
    assert np.all(np.isfinite(flat)) and not np.allclose(flat, worker.init_flat_params(0))
    assert segments() == before


def test_sigkilled_worker_fails_the_run_and_leaves_no_segment():
    before = segments()   # with no restarts allowed (tests/test_restarts.py: with them)
    worker = AsyncWorker.from_config(CFG.replace(total_steps=50_000_000, max_restarts=0))

    def kill_later(procs):
        threading.Timer(1.0, os.kill, args=(procs[1].pid, signal.SIGKILL)).start()

    t0 = time.monotonic()
    stopped = train_seed(worker, 0, on_start=kill_later).stopped
    assert time.monotonic() - t0 < 120
    assert isinstance(stopped, WorkerProcessError) and isinstance(stopped, WorkerError)
    assert stopped.worker == 1 and "SIGKILL" in str(stopped)
    assert segments() == before


def test_interrupt_in_parent_stops_workers_and_unlinks():
    before = segments()
    worker = AsyncWorker.from_config(CFG.replace(total_steps=50_000_000))
    calls = [0]

    def progress(_):
        calls[0] += 1
        if calls[0] == 40:
            raise KeyboardInterrupt

    stopped = train_seed(worker, 0, on_progress=progress).stopped
    assert isinstance(stopped, KeyboardInterrupt)
    assert segments() == before


def test_worker_exception_is_reported_with_traceback(tmp_path):
    from a3c_jax.shell.runner import run

    with pytest.raises(WorkerProcessError, match="(?s)worker \\d failed.*Traceback"):
        # the loss is traced only inside the worker processes, so the error is raised there
        run(CFG.replace(out=str(tmp_path / "r"), algo="a3c", hidden=(8,), max_restarts=0),
            loss_fn=_raising_loss)
    assert (tmp_path / "r" / "config.json").exists()


def _raising_loss(params, apply_fn, traj, cfg):
    raise ValueError("loss refused")


@pytest.mark.learning
def test_a3c_learns_cartpole_on_processes():
    cfg = Config(algo="a3c", backend="processes", workers=2, total_steps=1_000_000,
                 seeds=(0,), progress=False, log_interval=1_000, stop_return=475.0)
    got = train_seed(AsyncWorker.from_config(cfg), 0)
    assert got.stopped is None
    first = curves.updates_steps_to(update_rows(0, got.records), 475.0)
    print(f"processes: env steps to 475 = {first}")
    assert np.isfinite(first) and first <= 1_000_000


_CALLS = [0]
FAIL_AT = 30


def _count_and_fail(_):
    _CALLS[0] += 1   # per worker process: each has its own counter
    if _CALLS[0] > FAIL_AT:
        raise RuntimeError("injected failure")


def _failing_later_loss(params, apply_fn, traj, cfg):
    """The package loss, failing at run time (not when traced) in the worker's 30th step."""
    import jax

    from a3c_jax.core import losses

    jax.debug.callback(_count_and_fail, traj.reward)
    return losses.actor_critic_segment_loss(params, apply_fn, traj, cfg)


def test_failing_worker_flushes_its_records_before_it_exits():
    cfg = CFG.replace(workers=1, total_steps=50_000_000, hidden=(8,), max_restarts=0)
    got = train_seed(AsyncWorker.from_config(cfg), 0, loss_fn=_failing_later_loss)
    assert isinstance(got.stopped, WorkerProcessError) and "injected failure" in str(got.stopped)
    # one call compiles, then FAIL_AT - 1 updates wrote a record each: every one arrived,
    # although fewer than a batch (256) were buffered when the worker failed
    assert len(got.records) == FAIL_AT - 1
    assert [r.version_written for r in got.records] == list(range(1, FAIL_AT))


def test_ctrl_c_during_warm_up_stops_within_seconds():
    before = segments()
    worker = AsyncWorker.from_config(CFG.replace(total_steps=50_000_000))
    ticks = [0]

    def on_tick(running, per_worker):
        ticks[0] += 1
        if ticks[0] == 5:   # 0.5 s in: the workers are still importing JAX and compiling
            assert not running.started
            raise KeyboardInterrupt

    t0 = time.monotonic()
    got = train_seed(worker, 0, on_tick=on_tick)
    assert isinstance(got.stopped, KeyboardInterrupt) and got.records == []
    assert time.monotonic() - t0 < 5.0
    assert segments() == before
