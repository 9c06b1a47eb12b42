"""The signals that show a collapse (gradient norm before clipping, explained variance, mean
entropy, a Gaussian's sigma): computed in the jitted step, averaged into every driver's
metrics.csv rows, blank where a method has none."""

from __future__ import annotations

import csv
import math

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.algorithms import interface
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config
from a3c_jax.core import curves, losses, optim
from a3c_jax.shell.runner import run

SIGNALS = ("grad_norm", "explained_variance", "entropy", "sigma")


def _ev(v, g, mask=None):
    """One update's explained variance, from the moments its loss reports."""
    m = losses.value_moments(jnp.asarray(v), jnp.asarray(g), mask)
    return float(curves.explained_variance(*(m[f] for f in curves.EV_MOMENTS)))


def test_explained_variance_by_hand():
    g = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    assert _ev(g, g) == pytest.approx(1.0)
    # predicting the mean explains nothing; predicting the mean minus noise is worse
    assert _ev(jnp.full_like(g, 3.0), g) == pytest.approx(0.0)
    v = g + jnp.array([[1.0, -1.0], [-1.0, 1.0]])     # Var[G - V] = 1, Var[G] = 3.5
    assert _ev(v, g) == pytest.approx(1.0 - 1.0 / 3.5)
    # only the marked steps count: on [1, 3] (Var 1) V = 2 explains nothing, whatever the
    # unmarked steps hold (NaN included)
    mask = jnp.array([[True, False], [True, False]])
    g_nan = g.at[:, 1].set(jnp.nan)
    assert _ev(jnp.full_like(g, 2.0), g_nan, mask) == pytest.approx(0.0)
    # constant returns, or no step at all: nothing to explain, NaN rather than an infinity
    assert math.isnan(_ev(jnp.zeros(3), jnp.ones(3)))
    assert math.isnan(_ev(g, g, jnp.zeros(g.shape, bool)))


def _step_metrics(combine="step-mean", **kw):
    """One segment_grad's Metrics of sync A2C on CartPole, seed 0."""
    cfg = resolve(Config(algo="a2c", num_envs=4, t_max=8, combine=combine, **kw))
    algo = interface.make_algorithm(cfg, cfg.num_envs)
    k_params, k_env, k_run = jax.random.split(jax.random.key(0), 3)
    params = algo.init_params(k_params)
    grads, _, _, m = jax.jit(algo.segment_grad)(params, None, algo.init_actor(k_env), k_run)
    return cfg, algo, params, grads, m


def test_entropy_is_the_per_step_mean_under_every_combine():
    """The same parameters and segment: the logged entropy does not scale with the batch
    (under sum it used to be the batch's total, 45.7 for a two-action policy)."""
    ms = {how: _step_metrics(how)[-1] for how in ("sum", "step-mean", "env-mean")}
    ent = float(ms["step-mean"].entropy)
    assert 0.0 < ent <= math.log(2) + 1e-6
    assert float(ms["sum"].entropy) == pytest.approx(ent, rel=1e-6)
    assert float(ms["env-mean"].entropy) == pytest.approx(ent, rel=1e-6)
    # while the loss itself still combines as asked: its value term grows with the batch
    assert float(ms["sum"].value_loss) == pytest.approx(32 * float(ms["step-mean"].value_loss),
                                                        rel=1e-4)


def test_grad_norm_is_taken_before_clipping():
    """With a clip far below the gradient's size the worker's step clips to it, and the
    reported norm is the unclipped one, above the clip."""
    clip = 1e-4
    cfg, algo, params, grads, m = _step_metrics(max_grad_norm=clip)
    spec = optim.OptSpec.from_config(cfg)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    layout = interface.StepLayout(flat.shape[0], interface.stats_slice(params))
    step = jax.jit(interface.flat_step(algo, spec, unravel, layout))
    k_env, k_run = jax.random.split(jax.random.key(1))
    out, _, _ = step(flat, None, algo.init_actor(k_env), k_run)
    res = layout.unpack(np.asarray(out))
    assert np.linalg.norm(res.grad) == pytest.approx(clip, rel=1e-3)
    assert float(res.metrics.grad_norm) > 100 * clip
    # the norm of the unclipped gradient, exactly
    assert float(m.grad_norm) == pytest.approx(
        float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads)))), rel=1e-5)


@pytest.mark.parametrize("env,gaussian", [("CartPole-v1", False), ("Pendulum-v1", True)])
def test_sync_a2c_rows_carry_the_signals(tmp_path, env, gaussian):
    out = tmp_path / "run"
    run(Config(algo="a2c", env=env, num_envs=4, t_max=5, total_steps=2_000,
               log_interval=400, seeds=(0,), progress=False, out=str(out)))
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and set(curves.SIGNALS) <= set(rows[0])
    for r in rows:
        for k in ("grad_norm", "explained_variance", "entropy"):
            assert math.isfinite(float(r[k])), (k, r)
        assert float(r["grad_norm"]) > 0
        if gaussian:
            assert float(r["sigma"]) > 0
        else:
            assert r["sigma"] == ""     # blank: a categorical policy has no sigma


@pytest.mark.parametrize("algo", ["a3c", "nq"])
def test_async_threads_rows_carry_the_signals(algo):
    result = run(Config(algo=algo, backend="threads", workers=2, total_steps=2_000,
                        log_interval=500, seeds=(0,), progress=False), write=False)
    assert result.rows
    for r in result.rows:
        assert math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0
        assert math.isnan(r["sigma"])
        if algo == "a3c":
            assert math.isfinite(r["explained_variance"]) and math.isfinite(r["entropy"])
        else:   # a value method: no V to explain the returns, no policy entropy
            assert math.isnan(r["explained_variance"]) and math.isnan(r["entropy"])
    assert all(math.isfinite(float(u["grad_norm"])) for u in result.update_rows)
