"""Divergence: a non-finite gradient is never applied, is counted, and enough of them in a
row stop the run as ``diverged`` (exit status 1), keeping only finite parameters."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.config.checks import check_config
from a3c_jax.config.schema import Config
from a3c_jax.core import losses
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged
from a3c_jax.shell import checkpoints, files

ROOT = Path(__file__).resolve().parents[1]
BLOW_UP = ["--optimizer", "sgd", "--lr", "100", "--max-grad-norm", "1e30",
           "--reward-scale", "1e6", "--reward-norm", "False", "--total-steps", "40000",
           "--no-progress"]


def nan_loss(params, apply_fn, traj, cfg):
    """The actor-critic loss times NaN: every gradient entry is NaN."""
    loss, m = losses.actor_critic_segment_loss(params, apply_fn, traj, cfg)
    return loss * jnp.nan, m


def all_finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree)
              if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)]
    return bool(leaves) and all(np.isfinite(x).all() for x in leaves)


def train(tmp_path, *flags) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "run"
    got = subprocess.run([sys.executable, "-m", "a3c_jax.commands.train", *flags, *BLOW_UP,
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    return got, json.loads((out / "run.json").read_text())


@pytest.mark.parametrize("flags", [["--algo", "a3c", "--workers", "2"],
                                   ["--algo", "a3c", "--workers", "2", "--backend", "processes"],
                                   ["--algo", "a2c", "--num-envs", "4"]],
                         ids=["a3c-threads", "a3c-processes", "a2c-sync"])
def test_blow_up_ends_diverged_with_finite_checkpoint(tmp_path, flags):
    got, info = train(tmp_path, *flags)
    assert got.returncode == 1, got.stderr
    assert "diverged: seed 0" in got.stderr and "env step" in got.stderr
    assert info["status"] == "diverged" and "seed 0" in info["diverged"]
    assert info["nonfinite"]["0"] > 0
    entries = checkpoints.load(tmp_path / "run")
    assert 0 in entries and all_finite(entries[0])
    if (tmp_path / "run" / "params_seed0.msgpack").exists():
        from flax import serialization
        raw = serialization.msgpack_restore(
            (tmp_path / "run" / "params_seed0.msgpack").read_bytes())
        assert all_finite(raw)


def test_nan_gradient_leaves_store_unchanged():
    config = Config(algo="a3c", total_steps=2_000, workers=2, lr=1e-3, obs_norm=True,
                    progress=False, max_nonfinite=3)
    worker = AsyncWorker.from_config(config, nan_loss)
    store = worker.make_store(0)
    params = store.params.copy()
    rms = store.rms.copy()
    got = train_seed(worker, 0, store=store)
    assert isinstance(got.stopped, Diverged)
    assert store.version == 0
    np.testing.assert_array_equal(store.params, params)   # statistics slice included
    np.testing.assert_array_equal(store.rms, rms)
    assert sum(r.nonfinite for r in got.records) >= 3
    assert all(r.nonfinite == 1 for r in got.records)


def test_max_nonfinite_is_validated():
    with pytest.raises(ValueError, match="max_nonfinite"):
        check_config(Config(max_nonfinite=0))
    check_config(Config(max_nonfinite=1))


@pytest.mark.parametrize("name", ["rmsprop", "sgd"])
def test_sync_update_skips_a_nonfinite_gradient(name):
    from a3c_jax.drivers.synchronous import make_train

    trainer = make_train(Config(algo="a2c", num_envs=2, total_steps=400, optimizer=name,
                                lr=1e-3, obs_norm=False), nan_loss)
    state = trainer.init(jax.random.key(0))
    after, _ = jax.jit(lambda s: trainer.run_chunk(s, 3))(state)
    for a, b in zip(jax.tree.leaves((after.params, after.opt_state)),
                    jax.tree.leaves((state.params, state.opt_state))):
        np.testing.assert_array_equal(a, b)
    assert int(after.nonfinite) == 3 and int(after.nonfinite_total) == 3


def test_emulator_never_applies_a_nonfinite_gradient():
    from a3c_jax.shell.runner import run

    config = Config(algo="a3c", backend="emulated", total_steps=400, workers=2, lr=1e-3,
                    progress=False, seeds=(0,))
    got = run(config, loss_fn=nan_loss, write=False)
    assert all_finite(jax.device_get(got.params[0]))


def test_diverged_survives_the_trip_between_processes():
    """A worker process (or Ray actor) sends its ``Diverged`` to the parent by pickling: the
    seed, worker and env step must arrive, so the run ends ``diverged``, not ``failed``."""
    import pickle

    sent = Diverged(3, 1, 140, 5)
    got = pickle.loads(pickle.dumps(sent))
    assert isinstance(got, Diverged) and str(got) == str(sent)
    assert (got.seed, got.worker, got.env_steps, got.count) == (3, 1, 140, 5)


def test_emulated_blow_up_is_counted_and_ends_diverged(tmp_path):
    """The emulator skips non-finite gradients as the store does, counts them (updates.csv,
    run.json) and stops the run as ``diverged`` after ``max_nonfinite`` in a row."""
    got, info = train(tmp_path, "--algo", "a3c", "--workers", "2", "--backend", "emulated")
    assert got.returncode == 1, got.stderr
    assert "diverged: seed 0" in got.stderr and "env step" in got.stderr
    assert info["status"] == "diverged" and "seed 0" in info["diverged"]
    updates = np.genfromtxt(tmp_path / "run" / "updates.csv", delimiter=",", names=True)
    assert info["nonfinite"]["0"] == int(updates["nonfinite"].sum()) >= 5
    assert updates["env_steps"].max() < 40_000   # stopped before the budget
    from flax import serialization
    raw = serialization.msgpack_restore((tmp_path / "run" / "params_seed0.msgpack").read_bytes())
    assert all_finite(raw)
