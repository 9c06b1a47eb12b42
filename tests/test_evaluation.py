"""Greedy evaluation during training (``eval_every``): the evaluation plays the greedy policy
on keys of its own, leaves training untouched, and shows up in metrics.csv and the loggers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

from a3c_jax.algorithms import evaluation
from a3c_jax.analysis import policy
from a3c_jax.config import defaults
from a3c_jax.config.schema import Config
from a3c_jax.core.envs import make_env
from a3c_jax.shell import files, loggers
from a3c_jax.shell.runner import run

EPISODES = 3


def with_output_bias(params, bias):
    """``params`` with the output layer (``Dense_0``) answering ``bias`` whatever the input."""
    p = jax.tree.map(jnp.asarray, params)
    out = dict(p["params"]["Dense_0"], kernel=jnp.zeros_like(p["params"]["Dense_0"]["kernel"]),
               bias=jnp.asarray(bias, jnp.float32))
    return {"params": {**p["params"], "Dense_0": out}}


def constant_action_returns(config, action: int, key) -> jax.Array:
    """[EPISODES] returns of CartPole played with one fixed action, on the key split the
    evaluation uses (reset key, then per step an action key and an env key)."""
    env = make_env(config.env, EPISODES, config)
    k_reset, k_run = jax.random.split(key)
    state = env.reset(k_reset)
    done_ret = jnp.full((EPISODES,), jnp.nan)
    for k in jax.random.split(k_run, evaluation.episode_limit(env)):
        _, k_env = jax.random.split(k)
        state, out = env.step(k_env, state, jnp.full((EPISODES,), action, jnp.int32))
        ended = (out.terminated | out.truncated) & jnp.isnan(done_ret)
        done_ret = jnp.where(ended, out.completed_return, done_ret)
        if not jnp.isnan(done_ret).any():
            break
    return done_ret


@pytest.mark.parametrize("algo, bias, action", [
    ("nq", [0.0, 1.0], 1),                    # argmax Q = 1
    ("a3c", [0.3, 0.0], 0),                   # pi = (0.57, 0.43): its mode is 0
])
def test_evaluation_plays_the_greedy_action(algo, bias, action):
    config = defaults.resolve(Config(algo=algo, env="CartPole-v1"))
    params = with_output_bias(policy.make_policy(config).params, bias)
    key = evaluation.eval_key(0, 1)
    got = jax.jit(evaluation.make_evaluate(config, EPISODES))(params, key)
    want = constant_action_returns(config, action, key)
    assert bool(got.finished.all())
    assert got.returns.tolist() == want.tolist()
    assert float(got.mean_return) == pytest.approx(float(want.mean()))
    # sampling from pi (not its mode) would push left sometimes: another return
    if algo == "a3c":
        sampled = evaluation.make_evaluate(config, EPISODES, greedy=False)(params, key)
        assert sampled.returns.tolist() != want.tolist()


def test_eval_keys_are_their_own_stream():
    train = jax.random.key_data(jax.random.split(jax.random.key(0)))
    k = jax.random.key_data(evaluation.eval_key(0, 1))
    assert not any(bool((k == t).all()) for t in train)
    assert not bool((k == jax.random.key_data(evaluation.eval_key(0, 2))).all())
    assert not bool((k == jax.random.key_data(evaluation.eval_key(1, 1))).all())


def test_evaluation_does_not_perturb_training():
    base = dict(algo="a2c", backend="sync", env="CartPole-v1", num_envs=4, total_steps=3000,
                seeds=(0, 1), log_interval=500, log_seconds=0.0, progress=False)
    plain = run(Config(**base), write=False).rows
    evald = run(Config(**base, eval_every=1000, eval_episodes=4), write=False).rows
    skip = ("wall_time_s", "eval_return")
    nan = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
    strip = [[{k: nan(v) for k, v in r.items() if k not in skip} for r in rows]
             for rows in (plain, evald)]
    assert strip[0] == strip[1]
    shown = [(r["seed"], r["env_steps"]) for r in evald if "eval_return" in r]
    assert shown == [(s, n) for n in (1000, 2000, 3000) for s in (0, 1)]
    assert all(math.isfinite(r["eval_return"]) for r in evald if "eval_return" in r)


@pytest.mark.parametrize("algo, backend", [("a2c", "sync"), ("a3c", "threads"),
                                           ("nq", "threads")])
def test_eval_return_in_metrics_csv(tmp_path, algo, backend):
    out = tmp_path / "run"
    kw = dict(num_envs=4) if backend == "sync" else dict(workers=2)
    run(Config(algo=algo, backend=backend, env="CartPole-v1", total_steps=2000,
               log_interval=500, eval_every=1000, eval_episodes=2, progress=False,
               out=str(out), **kw))
    rows = files.read_csv(out / "metrics.csv")
    assert "eval_return" in rows[0]
    values = [float(r["eval_return"]) for r in rows if r["eval_return"] != ""]
    assert values and all(v >= 1.0 for v in values)       # every CartPole episode scores
    assert len(values) < len(rows)                         # other rows leave it blank


def test_loggers_write_eval_return(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = Config(algo="a2c", out=str(tmp_path), tensorboard=True, progress=False)
    (writer,) = loggers.subscribers(config)
    base = {"algo": "a2c", "seed": 0, "wall_time_s": 1.0, "episode_return": 10.0,
            "episodes": 2, "policy_loss": 0.1, "value_loss": 0.2, "entropy": 0.5,
            "total_loss": 0.3, "staleness": 0.0}
    writer.rows([dict(base, env_steps=500), dict(base, env_steps=1000, eval_return=42.0)])
    writer.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard" / "seed0"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("eval/return")] == [(1000, 42.0)]
    assert "eval/return" not in loggers.scalars(dict(base, env_steps=500), 1.0, False)
    assert loggers._wandb_name("eval/return") == "eval/return"


def test_config_checks_eval_fields():
    with pytest.raises(ValueError, match="eval_every"):
        defaults.resolve(Config(eval_every=-1))
    with pytest.raises(ValueError, match="eval_episodes"):
        defaults.resolve(Config(eval_episodes=0))
