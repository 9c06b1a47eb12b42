"""A3C on worker threads: determinism when locked, lifecycle, budget, CLI, learning."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from a3c_jax.core import curves
from a3c_jax.shell import files as runlog
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run
from a3c_jax.drivers.asynchronous.store import SharedStore
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.backends.threads import ThreadLaunch
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, WorkerError

ROOT = Path(__file__).resolve().parents[1]
TINY = Config(algo="a3c", env="CartPole-v1", total_steps=2_000, workers=2, seeds=(0,),
              lr=1e-3, lr_anneal=False, progress=False, log_interval=100)


def worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith("a3c-worker")]


class RecordingStore(SharedStore):
    """Records every gradient written (and can fail on the k-th write)."""

    fail_at: int | None = None

    def apply(self, grad, snap, local, t=None):
        if self.fail_at is not None and self.version + 1 >= self.fail_at:
            raise FloatingPointError("injected failure")
        self.grads = getattr(self, "grads", [])
        self.grads.append(np.array(grad, np.float32))
        return super().apply(grad, snap, local, t)


def recording_store(worker, seed, cls=RecordingStore, make_store=AsyncWorker.make_store):
    base = make_store(worker, seed)
    return cls(base.params, base.opt, base.mode, with_target=False)


def test_locked_single_worker_is_deterministic_and_equals_sequential_optax():
    cfg = TINY.replace(workers=1, store_mode="locked")
    worker = AsyncWorker.from_config(cfg)
    worker.compile()
    finals = []
    for _ in range(2):
        store = recording_store(worker, 0)
        p0 = store.params.copy()
        got = train_seed(worker, 0, store=store)
        records = got.records
        assert got.stopped is None
        finals.append(store.params.copy())
        np.testing.assert_array_equal(got.flat_params, store.params)
    np.testing.assert_array_equal(finals[0], finals[1])
    assert len(store.grads) == len(records) == cfg.total_steps // cfg.steps_per_update
    opt = optax.rmsprop(cfg.lr, decay=cfg.rms_decay, eps=cfg.rms_eps, eps_in_sqrt=True)
    p, state = p0, opt.init(p0)
    for g in store.grads:
        upd, state = opt.update(g, state, p)
        p = optax.apply_updates(p, upd)
    np.testing.assert_allclose(finals[0], p, rtol=1e-5, atol=1e-6)
    assert all(r.staleness == 0 for r in records)


def test_budget_is_respected_and_records_are_complete():
    cfg = TINY.replace(workers=3, total_steps=3_003)
    worker = AsyncWorker.from_config(cfg)
    worker.compile()
    got = train_seed(worker, 0)
    records = got.records
    assert got.stopped is None
    n = cfg.steps_per_update
    assert cfg.total_steps <= got.T < cfg.total_steps + n
    # the store's version counter (writes) is lost["updates"]
    assert len(records) == got.lost["updates"] == got.T // n
    assert {r.worker for r in records} == {0, 1, 2}
    assert not worker_threads()


def test_failing_worker_stops_the_run_with_its_error():
    cfg = TINY.replace(total_steps=10_000_000)
    worker = AsyncWorker.from_config(cfg)
    worker.compile()
    store = recording_store(worker, 0)
    store.fail_at = 20
    t0 = time.monotonic()
    got = train_seed(worker, 0, store=store)
    stopped = got.stopped
    assert time.monotonic() - t0 < 30
    assert isinstance(stopped, WorkerError)
    assert isinstance(stopped.__cause__, FloatingPointError)   # the worker's own exception
    assert "injected failure" in str(stopped) and "traceback" in str(stopped)
    assert stopped.worker in (0, 1)
    assert not worker_threads()


def test_run_reraises_worker_error_after_writing(tmp_path, monkeypatch):
    def failing_store(worker, seed):
        s = recording_store(worker, seed)   # built by the real make_store
        s.fail_at = 10
        return s

    monkeypatch.setattr(AsyncWorker, "make_store", failing_store)
    cfg = TINY.replace(total_steps=10_000_000, out=str(tmp_path / "run"))
    with pytest.raises(WorkerError, match="worker [01] failed"):
        run(cfg)
    assert (tmp_path / "run" / "config.json").exists()
    assert not worker_threads()


def test_keyboard_interrupt_stops_workers_and_flushes(tmp_path, monkeypatch):
    real = ThreadLaunch.poll
    calls = [0]

    def interrupting(self, timeout):
        """Ctrl-C arrives in the supervisor's wait, on its 5th tick."""
        running = real(self, timeout)
        calls[0] += 1
        if calls[0] == 5:
            raise KeyboardInterrupt
        return running

    monkeypatch.setattr(ThreadLaunch, "poll", interrupting)
    cfg = TINY.replace(total_steps=10_000_000, out=str(tmp_path / "run"))
    result = run(cfg)
    assert result.interrupted
    assert not worker_threads()
    rows = runlog.read_csv(tmp_path / "run" / "metrics.csv")
    assert rows and {"worker", "staleness"} <= set(runlog.read_csv(
        tmp_path / "run" / "updates.csv")[0])
    assert (tmp_path / "run" / "params_seed0.msgpack").exists()


def test_cli_sigint_flushes_and_exits(tmp_path):
    out = tmp_path / "sig"
    log = open(tmp_path / "stderr.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "experiments" / "train.py"), "--algo", "a3c",
         "--total-steps", "50000000", "--seeds", "0", "--out", str(out), "--progress",
         "--log-interval", "500"], stdout=subprocess.PIPE, stderr=log, text=True)
    # the progress bar (on stderr) shows steps once the workers are training
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        text = (tmp_path / "stderr.log").read_text()
        if "step" in text and "/s" in text:
            break
    time.sleep(2)
    assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    log.close()
    assert proc.returncode == 130, (tmp_path / "stderr.log").read_text()
    assert "interrupted" in stdout
    for name in ("config.json", "metrics.csv", "updates.csv", "params_seed0.msgpack"):
        assert (out / name).exists(), name


def test_cli_a3c_end_to_end(tmp_path):
    out = tmp_path / "a3c"
    res = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "train.py"), "--algo", "a3c",
         "--workers", "2", "--envs-per-worker", "2", "--total-steps", "3000", "--seeds", "0",
         "1", "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = runlog.read_csv(out / "metrics.csv")
    assert set(curves.METRIC_COLUMNS) <= set(rows[0])
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert all(r["algo"] == "a3c" for r in rows)
    ups = runlog.read_csv(out / "updates.csv")
    assert {r["worker"] for r in ups} == {"0", "1"}
    assert (out / "returns.png").exists()


@pytest.mark.parametrize("optimizer", ["rmsprop", "rmsprop_local", "sgd"])
def test_every_optimizer_variant_runs(optimizer):
    res = run(TINY.replace(optimizer=optimizer), write=False)
    p = ravel_pytree(res.params[0])[0]
    assert np.all(np.isfinite(np.asarray(p)))
    assert len(res.rows) > 0


@pytest.mark.learning
def test_a3c_learns_cartpole_with_two_workers():
    """A3C, 2 workers, E = 1, t_max 5, shared RMSProp: smoothed return >= 475 within 1M."""
    cfg = Config(algo="a3c", env="CartPole-v1", workers=2, envs_per_worker=1,
                 total_steps=1_000_000, seeds=(0, 1), progress=False, log_interval=1_000,
                 stop_return=475.0, stop_window=10_000)
    res = run(cfg, write=False)
    for seed in cfg.seeds:
        first = curves.updates_steps_to(res.update_rows, 475.0, seed=seed)
        print(f"seed {seed}: env steps to 475 = {first}, staleness {res.extras['staleness'][seed]}")
        assert np.isfinite(first) and first <= 1_000_000
    # the value function's explained variance, pooled over each row's steps, shows a V that
    # tracks the returns (0.58-0.99 in 5k-step rows after 10k steps, seed 0; averaged per
    # 5-step update instead, it read -100 to -1400 for a V that was fine on Pendulum)
    ev = [r["explained_variance"] for r in res.rows if r["env_steps"] > 10_000]
    assert ev and np.median(ev) >= 0.5 and max(ev) <= 1.0, ev
