"""Saved policies (a3c_jax.analysis.policy) and experiments/evaluate.py on every kind of run.

Run directories are built without training: a resolved config.json and freshly initialised
parameters (made with ``networks`` directly, not through the module under test), one per
policy kind: categorical (CartPole a2c), Gaussian with observation statistics (Pendulum a2c),
recurrent (CartPole-masked a2c with an LSTM) and a Q-network (CartPole nq). Bad files must
give a ValueError from the library and exit status 2 with a message from the script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.config import defaults
from a3c_jax.core import networks, normalization
from a3c_jax.analysis import policy as saved
from a3c_jax.shell import files as runlog
from a3c_jax.config.schema import Config
from a3c_jax.core.envs import Env

REPO = Path(__file__).resolve().parent.parent
EPISODES = 6

CONFIGS = {
    "categorical": Config(algo="a2c", env="CartPole-v1", hidden=(16,), seeds=(0, 1)),
    "gaussian": Config(algo="a2c", env="Pendulum-v1", hidden=(16,), obs_norm=True),
    "recurrent-categorical": Config(algo="a2c", env="CartPole-masked-v1", hidden=(16,),
                                    recurrent=True, lstm_size=8),
    "q": Config(algo="nq", env="CartPole-v1", hidden=(16,)),
}
KINDS = list(CONFIGS)


def fresh_params(config: Config, seed: int):
    """Initial parameters of the network ``config`` describes, built without a3c_jax.analysis.policy;
    observation statistics (if any) are set off their prior so normalisation matters."""
    env = Env(config.env, 1)
    key = jax.random.key(seed)
    if config.algo in ("q1", "sarsa", "nq"):
        return networks.make_q_network(config, env).init(
            key, jnp.zeros((1,) + env.obs_shape, jnp.float32))
    params = networks.init_params(networks.make_actor_critic(config, env), key,
                                        env.obs_shape)
    if normalization.has_stats(params):
        stats = normalization.get_stats(params)
        params = normalization.set_stats(params, {
            "mean": stats["mean"] + 0.5, "var": stats["var"] * 4.0,
            "count": jnp.asarray(100.0, jnp.float32)})
    return params


def make_run(run_dir: Path, config: Config, params_config: Config | None = None) -> Path:
    """A run directory holding ``config`` (resolved) and fresh parameters for each seed, of
    the network ``params_config`` describes (default: ``config``)."""
    config = defaults.resolve(config)
    runlog.write_config(run_dir, config)
    for seed in config.seeds:
        runlog.save_params(run_dir, seed,
                           fresh_params(defaults.resolve(params_config or config), seed))
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return {kind: make_run(tmp_path_factory.mktemp(kind), config)
            for kind, config in CONFIGS.items()}


def load_evaluate_script():
    spec = importlib.util.spec_from_file_location("evaluate", REPO / "experiments" /
                                                  "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["evaluate"] = module   # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_evaluate_script()


# --- the library ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_load_policy_restores_the_saved_parameters(runs, kind):
    pol = saved.load_policy(runs[kind], 0)
    assert pol.kind == kind and pol.env_name == CONFIGS[kind].env
    assert pol.config == defaults.resolve(CONFIGS[kind])
    want = fresh_params(pol.config, 0)
    assert jax.tree.structure(pol.params) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(pol.params), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", KINDS)
def test_act_is_pure_and_jittable_and_greedy_is_the_mode(runs, kind):
    pol = saved.load_policy(runs[kind], 0)
    env = Env(pol.env_name, 5)
    obs = env.reset(jax.random.key(3)).obs + 0.1

    @jax.jit
    def act_both(params, state, obs, key):
        return pol.act(params, state, obs, key, greedy=True), pol.act(params, state, obs, key,
                                                                      greedy=False)

    state = pol.initial_state(5)
    (new_state, greedy), (_, sampled) = act_both(pol.params, state, obs, jax.random.key(4))
    assert greedy.shape == sampled.shape == (5,) + env.action_shape
    if pol.kind == "q":
        np.testing.assert_array_equal(greedy, jnp.argmax(pol.network.apply(pol.params, obs), -1))
    elif pol.recurrent:
        carry, (logits, _) = pol.network.apply(pol.params, state, obs)
        np.testing.assert_array_equal(greedy, jnp.argmax(logits, -1))
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(carry)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        reset = pol.reset_state(new_state, jnp.array([True, False, False, False, True]))
        for c in jax.tree.leaves(reset):
            assert not np.any(c[0]) and not np.any(c[4]) and np.any(c[1])
    elif pol.kind == "gaussian":
        dist, _ = pol.network.apply(pol.params, obs)
        np.testing.assert_allclose(greedy, dist.mean, rtol=1e-6)
        assert not np.allclose(sampled, greedy)
    else:
        logits, _ = pol.network.apply(pol.params, obs)
        np.testing.assert_array_equal(greedy, jnp.argmax(logits, -1))
    if not pol.recurrent:
        assert state is None and new_state is None


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_plays_first_episodes(runs, kind):
    pol = saved.load_policy(runs[kind], 0)
    key = saved.eval_key(12345, 0)
    result = saved.evaluate(pol, EPISODES, key)
    assert set(result) == {"returns", "lengths", "finished"}
    for v in result.values():
        assert isinstance(v, np.ndarray) and v.shape == (EPISODES,)
    assert np.all(np.isfinite(result["returns"])) and result["finished"].all()
    if pol.env_name == "Pendulum-v1":   # no termination: every episode is cut at 200 steps
        assert (result["lengths"] == 200).all() and (result["returns"] < 0).all()
    else:                               # CartPole: +1 a step, an untrained policy falls early
        np.testing.assert_array_equal(result["returns"], result["lengths"])
        assert (result["lengths"] > 5).all() and (result["lengths"] < 500).all()
    again = saved.evaluate(pol, EPISODES, key)
    for name in result:
        np.testing.assert_array_equal(result[name], again[name])


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_sampled_and_step_limit(runs, kind):
    pol = saved.load_policy(runs[kind], 0)
    sampled = saved.evaluate(pol, EPISODES, saved.eval_key(1, 0), greedy=False, max_steps=5)
    # no episode of either environment ends within 5 steps: each reports its return so far
    assert not sampled["finished"].any() and (sampled["lengths"] == 5).all()
    assert np.all(np.isfinite(sampled["returns"]))
    if pol.env_name != "Pendulum-v1":
        assert (sampled["returns"] == 5).all()


def test_evaluate_rejects_bad_arguments(runs):
    pol = saved.load_policy(runs["categorical"], 0)
    with pytest.raises(ValueError, match="episodes"):
        saved.evaluate(pol, 0, jax.random.key(0))
    with pytest.raises(ValueError, match="max_steps"):
        saved.evaluate(pol, 2, jax.random.key(0), max_steps=-1)


# --- the script ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_script_writes_eval_json(runs, kind, script, tmp_path, capsys):
    run_dir = runs[kind]
    seeds = CONFIGS[kind].seeds
    out = tmp_path / "eval.json"
    assert script.main([str(run_dir), "--episodes", str(EPISODES), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["policy"] == kind and report["mode"] == "greedy"
    assert report["episodes"] == EPISODES and set(report["seeds"]) == {str(s) for s in seeds}
    for r in report["seeds"].values():
        assert len(r["returns"]) == EPISODES and r["unfinished"] == 0
        assert r["mean"] == pytest.approx(np.mean(r["returns"]))
    # the same episodes as the library plays for this seed and evaluation seed
    lib = saved.evaluate(saved.load_policy(run_dir, seeds[0]), EPISODES,
                         saved.eval_key(12345, seeds[0]))
    np.testing.assert_array_equal(report["seeds"][str(seeds[0])]["returns"], lib["returns"])
    assert "all seeds: return" in capsys.readouterr().out
    # default destination: RUN_DIR/eval.json; --mode sampled
    assert script.main([str(run_dir), "--episodes", str(EPISODES), "--max-steps", "5",
                        "--mode", "sampled", "--seeds", str(seeds[-1])]) == 0
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["mode"] == "sampled" and report["max_steps"] == 5
    assert list(report["seeds"]) == [str(seeds[-1])]


def _break_params(run_dir: Path, how: str) -> None:
    path = run_dir / "params_seed0.msgpack"
    data = path.read_bytes()
    path.write_bytes({"garbage": b"this is not msgpack \x00\xff\xc1",
                      "empty": b"", "truncated": data[:len(data) // 2]}[how])


BAD = {
    # how to break a good categorical run -> what the message must say
    "garbage": "not a flax msgpack parameter file",
    "empty": "is empty",
    "truncated": "truncated",
    "hidden-sizes": "has shape",
    "structure": "missing obs_norm",
    "unknown-key": "unknown config fields: ['not_a_field']",
    "no-config": "no config.json",
    "no-params": "no saved parameters",
}


def make_bad_run(run_dir: Path, how: str) -> Path:
    good = CONFIGS["categorical"].replace(seeds=(0,))
    if how == "hidden-sizes":
        return make_run(run_dir, good.replace(hidden=(32,)), params_config=good)
    if how == "structure":
        return make_run(run_dir, good.replace(obs_norm=True), params_config=good)
    make_run(run_dir, good)
    if how in ("garbage", "empty", "truncated"):
        _break_params(run_dir, how)
    elif how == "unknown-key":
        data = json.loads((run_dir / "config.json").read_text())
        (run_dir / "config.json").write_text(json.dumps({**data, "not_a_field": 1}))
    elif how == "no-config":
        (run_dir / "config.json").unlink()
    elif how == "no-params":
        (run_dir / "params_seed0.msgpack").unlink()
    return run_dir


@pytest.mark.parametrize("how", list(BAD))
def test_bad_run_directories_are_reported(how, script, tmp_path, capsys):
    run_dir = make_bad_run(tmp_path, how)
    with pytest.raises(ValueError) as err:
        saved.load_policy(run_dir, 0)
    assert BAD[how] in str(err.value)
    capsys.readouterr()
    assert script.main([str(run_dir), "--episodes", "2", "--seeds", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and BAD[how] in captured.err
    assert "Traceback" not in captured.err and not (run_dir / "eval.json").exists()


def test_bad_input_exits_2_without_traceback_from_the_command_line(tmp_path):
    run_dir = make_bad_run(tmp_path, "truncated")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "evaluate.py"),
                           str(run_dir), "--episodes", "2"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr
