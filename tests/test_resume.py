"""Interrupted runs resumed from their checkpoints: the same env steps as an uninterrupted run,
curves without gaps or duplicates, and (synchronous driver) the very same parameters."""

from __future__ import annotations

import json
import os
import signal

import jax
import numpy as np
import pytest

from a3c_jax.shell import checkpoints, directory as rundir, files as runlog, synchronous as sync_run
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.backends.ray_store import ParameterServer
from a3c_jax.drivers.asynchronous.store_state import store_state
from a3c_jax.shell.runner import InvalidInput, run
from a3c_jax.drivers.asynchronous.backends.threads import ThreadLaunch

SYNC = Config(algo="a2c", num_envs=2, total_steps=2_000, seeds=(0, 1), hidden=(8,),
              log_interval=100, log_seconds=0.0, progress=False)
ASYNC = Config(algo="a3c", workers=2, total_steps=40_000, seeds=(0,), hidden=(8,),
               log_interval=1_000, progress=False)


def signal_on_call(monkeypatch, owner, name: str, k: int, signum=signal.SIGTERM):
    """Send ``signum`` to this process during the k-th call of ``owner.name`` (as a
    scheduler would), leaving the call itself alone."""
    real = getattr(owner, name)
    calls = [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == k:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def steps(rows, seed):
    return [int(r["env_steps"]) for r in rows if int(r["seed"]) == seed]


def test_sync_run_interrupted_and_resumed_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    whole = run(SYNC.replace(out=str(tmp_path / "whole")))
    cut_dir = tmp_path / "cut"
    with monkeypatch.context() as m:
        signal_on_call(m, sync_run, "seed_row", 9)      # the 5th row of seed 0
        cut = run(SYNC.replace(out=str(cut_dir), checkpoint_s=0.0))
    assert cut.interrupted and cut.extras["signal"] == "SIGTERM"
    assert steps(cut.rows, 0) == [100 * i for i in range(1, 6)]
    info = json.loads((cut_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM"

    resumed = run(rundir.resume_config(cut_dir))
    assert not resumed.interrupted
    for seed in SYNC.seeds:
        assert steps(resumed.rows, seed) == steps(whole.rows, seed)   # no gap, no duplicate
        for a, b in zip(jax.tree.leaves(resumed.params[seed]),
                        jax.tree.leaves(whole.params[seed])):
            np.testing.assert_array_equal(a, b)   # exactly where an uninterrupted run ends
    ret = lambda rs: [r["episode_return"] for r in rs]  # noqa: E731
    np.testing.assert_allclose(ret(resumed.rows), ret(whole.rows), rtol=1e-5)  # csv: 6 digits
    on_disk = runlog.read_csv(cut_dir / "metrics.csv")
    assert [int(r["env_steps"]) for r in on_disk] == [int(r["env_steps"]) for r in whole.rows]
    walls = [float(r["wall_time_s"]) for r in on_disk if r["seed"] == "0"]
    assert walls == sorted(walls)                       # the clock continues across the resume
    info = json.loads((cut_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["resume"]
    assert [h["status"] for h in info["history"]] == ["interrupted"]


def test_a_finished_run_continues_to_a_larger_budget(tmp_path):
    out = tmp_path / "run"
    run(SYNC.replace(out=str(out), seeds=(0,), total_steps=1_000))
    with pytest.raises(InvalidInput, match=r"^total_steps \(500\) is below the 1000 env steps"):
        run(rundir.resume_config(out, total_steps=500))
    more = run(rundir.resume_config(out, total_steps=1_600))
    assert steps(more.rows, 0) == [100 * i for i in range(1, 17)]
    assert checkpoints.load(out)[0]["env_steps"] == 1_600


def test_async_run_interrupted_and_resumed_has_every_update_once(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        signal_on_call(m, ThreadLaunch, "poll", 4, signal.SIGINT)
        cut = run(ASYNC.replace(out=str(out)))
    assert cut.interrupted and cut.extras["signal"] == "SIGINT"
    done = checkpoints.load(out)[0]["env_steps"]
    assert 0 < done < ASYNC.total_steps
    assert len(runlog.read_csv(out / "updates.csv")) == done // ASYNC.steps_per_update

    resumed = run(rundir.resume_config(out))
    seg = ASYNC.steps_per_update
    updates = runlog.read_csv(out / "updates.csv")
    # every claim of the budget was written exactly once, across both invocations
    assert sorted(int(r["version_written"]) for r in updates) == list(
        range(1, ASYNC.total_steps // seg + 1))
    assert sorted(int(r["env_steps"]) for r in updates) == list(
        range(seg, ASYNC.total_steps + 1, seg))
    rows = steps(resumed.rows, 0)
    assert rows == sorted(set(rows)) and rows[-1] == ASYNC.total_steps
    assert any(r <= done for r in rows) and any(r > done for r in rows)
    walls = [float(r["wall_time_s"]) for r in resumed.rows]
    assert min(w for w, s in zip(walls, rows) if s > done) >= max(
        w for w, s in zip(walls, rows) if s <= done) - 1.0   # one clock, not restarted at 0


def test_parameter_server_state_round_trip():
    from a3c_jax.drivers.asynchronous.worker import AsyncWorker

    cfg = ASYNC.replace(algo="q1", backend="ray")
    worker = AsyncWorker.from_config(cfg)
    server = ParameterServer(worker.init_flat_params(0), worker.config.to_dict(), True)
    state = server.state()
    state["params"] = state["params"] + 1.0
    state["counters"] = np.array([700, 12, 3])
    other = ParameterServer(worker.init_flat_params(1), worker.config.to_dict(), True)
    other.restore(state)
    got = other.state()
    np.testing.assert_array_equal(got["params"], state["params"])
    assert other.status() == (700, 12) and got["target"] is not None
    with pytest.raises(ValueError, match="store buffer params has shape"):
        other.restore(dict(state, params=np.zeros(3, np.float32)))
    assert store_state(other.store)["counters"].tolist() == [700, 12, 3]


@pytest.mark.parametrize("kind", ["value", "recurrent"])
def test_train_state_round_trips_through_a_checkpoint(kind, tmp_path):
    """Every part of a sync TrainState (target parameters, epsilon schedules, LSTM carries,
    PRNG keys) comes back from checkpoint.msgpack as it went in."""
    import jax.numpy as jnp

    from a3c_jax.drivers.synchronous import make_train

    cfg = (SYNC.replace(algo="nq", backend="sync") if kind == "value"
           else SYNC.replace(env="CartPole-masked-v1", recurrent=True, lstm_size=8))
    trainer = make_train(cfg)
    init = jax.jit(jax.vmap(trainer.init))
    state, _ = jax.jit(jax.vmap(lambda s: trainer.run_chunk(s, 3)))(
        init(jax.vmap(jax.random.key)(jnp.arange(2))))
    leaves = checkpoints.to_host(state)
    entries = {s: checkpoints.sync_entry([x[i] for x in leaves], 30, 3, 1.5, 0, False)
               for i, s in enumerate((0, 1))}
    checkpoints.save(tmp_path, entries)
    back = checkpoints.load(tmp_path)
    fresh = init(jax.vmap(jax.random.key)(jnp.arange(7, 9)))
    restored = checkpoints.from_host(fresh, [np.stack(xs) for xs in zip(
        *(checkpoints.sync_leaves(back[s]) for s in (0, 1)))])
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    part = state.target_params if kind == "value" else state.actor.carry
    assert part is not None and jax.tree.leaves(part)
    assert back[0]["updates"] == 3 and back[1]["wall_time_s"] == 1.5
