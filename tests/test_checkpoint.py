"""Checkpoints: a save/load round trip gives back the same policy, and an interrupted run still
writes everything it promises (config.json, metrics.csv, params)."""

from __future__ import annotations

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import networks
from a3c_jax.core import curves
from a3c_jax.shell import files as runlog, runner, synchronous as sync_run
from a3c_jax.config.schema import Config, Resolved
from a3c_jax.config.defaults import resolve
from a3c_jax.core.envs import Env


def _template(config: Config):
    env = Env(config.env, 1)
    network = networks.make_actor_critic(resolve(config), env)
    params = network.init(jax.random.key(123), jnp.zeros((1,) + env.obs_shape, jnp.float32))
    return env, network, params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ckpt")
    config = Config(algo="a2c", num_envs=2, total_steps=2000, seeds=(0, 1), progress=False,
                    out=str(tmp_path))
    return config, tmp_path, runner.run(config)


def test_round_trip_reproduces_the_policy_exactly(trained):
    config, tmp_path, result = trained
    env, network, template = _template(runlog.read_config(tmp_path))
    obs = Env(config.env, 64).reset(jax.random.key(7)).obs
    obs = obs + jax.random.normal(jax.random.key(8), obs.shape)   # off the reset states too
    for seed in config.seeds:
        loaded = runlog.load_params(tmp_path, seed, template)
        trained = result.params[seed]
        assert jax.tree.structure(loaded) == jax.tree.structure(trained)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        logits_l, value_l = network.apply(loaded, obs)
        logits_t, value_t = network.apply(trained, obs)
        np.testing.assert_array_equal(np.asarray(logits_l), np.asarray(logits_t))
        np.testing.assert_array_equal(np.asarray(value_l), np.asarray(value_t))
        np.testing.assert_array_equal(np.argmax(logits_l, -1), np.argmax(logits_t, -1))
        key = jax.random.key(9)
        np.testing.assert_array_equal(jax.random.categorical(key, logits_l),
                                      jax.random.categorical(key, logits_t))
    other = runlog.load_params(tmp_path, 1, template)
    assert not np.array_equal(jax.tree.leaves(other)[0],
                              jax.tree.leaves(runlog.load_params(tmp_path, 0, template))[0])


def test_interrupted_run_still_writes_its_files(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sync_run.seed_row

    def ctrl_c_on_third_row(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C: training stops after this row
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_run, "seed_row", ctrl_c_on_third_row)
    config = Config(algo="a2c", num_envs=2, total_steps=4000, log_interval=200, seeds=(0,),
                    progress=False, out=str(tmp_path), log_seconds=0.0)
    result = runner.run(config)
    assert result.interrupted and result.extras["signal"] == "SIGINT"
    assert len(result.rows) == 3 and result.rows[-1]["env_steps"] == 600
    # config.json holds the config with its per-action-space ("auto") fields resolved
    assert runlog.read_config(tmp_path) == resolve(config) == result.config
    assert isinstance(result.config, Resolved) and not isinstance(config, Resolved)
    rows = runlog.read_csv(tmp_path / "metrics.csv")
    assert len(rows) == 3 and list(rows[0]) == list(curves.METRIC_COLUMNS)
    _, _, template = _template(config)
    loaded = runlog.load_params(tmp_path, 0, template)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(result.params[0])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_load_params_rejects_a_mismatched_template(trained):
    config, tmp_path, _ = trained
    _, _, wrong = _template(config.replace(hidden=(8,)))
    with pytest.raises(ValueError, match="checkpoint"):
        runlog.load_params(tmp_path, 0, wrong)
