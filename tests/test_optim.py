"""Optimisers in the paper's forms, checked by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a3c_jax.config import Config
from a3c_jax.optim import learning_rate, make_optimizer

GRADS = [np.array([0.5, -2.0, 0.0], np.float32),
         np.array([1.0, 1.0, -3.0], np.float32),
         np.array([-0.2, 0.4, 1.5], np.float32)]


def _apply(opt, theta, grads):
    state = opt.init(theta)
    out = [theta]
    for d in grads:
        updates, state = opt.update(jnp.asarray(d), state, theta)
        theta = optax.apply_updates(theta, updates)
        out.append(theta)
    return out


def test_rmsprop_matches_paper_formula():
    """g <- a g + (1 - a) d^2;  theta <- theta - lr d / sqrt(g + eps), for three steps."""
    lr, a, eps = 0.1, 0.9, 1e-2   # a large eps so that its place (inside the root) matters
    cfg = Config(lr=lr, lr_anneal=False, rms_decay=a, rms_eps=eps, max_grad_norm=0.0)
    theta0 = jnp.array([1.0, 2.0, 3.0])
    ours = _apply(make_optimizer(cfg, num_updates=3), theta0, GRADS)
    theta, g = np.array(theta0, np.float64), np.zeros(3)
    for step, d in enumerate(GRADS, start=1):
        g = a * g + (1 - a) * d.astype(np.float64) ** 2
        theta = theta - lr * d / np.sqrt(g + eps)
        np.testing.assert_allclose(ours[step], theta, rtol=1e-5, atol=1e-6)
    # Not the eps-outside-the-root variant: that one differs visibly with this eps.
    outside = np.array(theta0) - lr * GRADS[0] / (np.sqrt((1 - a) * GRADS[0] ** 2) + eps)
    assert np.abs(np.asarray(ours[1]) - outside).max() > 1e-3


def test_rmsprop_local_is_the_same_arithmetic():
    kw = dict(lr=0.05, lr_anneal=False, max_grad_norm=0.0, algo="a3c")
    theta0 = jnp.array([1.0, 2.0, 3.0])
    shared = _apply(make_optimizer(Config(optimizer="rmsprop", **kw), 3), theta0, GRADS)
    local = _apply(make_optimizer(Config(optimizer="rmsprop_local", **kw), 3), theta0, GRADS)
    np.testing.assert_array_equal(shared[-1], local[-1])


def test_momentum_sgd_formula():
    """m <- mu m + d;  theta <- theta - lr m."""
    lr, mu = 0.1, 0.9
    cfg = Config(optimizer="sgd", lr=lr, momentum=mu, lr_anneal=False, max_grad_norm=0.0)
    theta0 = jnp.zeros(3)
    ours = _apply(make_optimizer(cfg, 3), theta0, GRADS)
    theta, m = np.zeros(3), np.zeros(3)
    for step, d in enumerate(GRADS, start=1):
        m = mu * m + d
        theta = theta - lr * m
        np.testing.assert_allclose(ours[step], theta, rtol=1e-5, atol=1e-6)


def test_annealed_learning_rate_reaches_zero():
    cfg = Config(lr=0.01, lr_anneal=True)
    sched = learning_rate(cfg, num_updates=10)
    np.testing.assert_allclose(sched(0), 0.01, rtol=1e-6)
    np.testing.assert_allclose(sched(5), 0.005, rtol=1e-6)
    np.testing.assert_allclose(sched(9), 0.001, rtol=1e-5)   # last update still moves
    assert float(sched(10)) == 0.0
    assert float(sched(50)) == 0.0
    assert learning_rate(Config(lr=0.01, lr_anneal=False), 10) == 0.01


def test_annealed_optimizer_stops_moving_at_the_end():
    """With sgd (no momentum) the update is exactly -lr_k d: lr_k falls linearly to 0."""
    n = 4
    cfg = Config(optimizer="sgd", momentum=0.0, lr=0.4, lr_anneal=True, max_grad_norm=0.0)
    opt = make_optimizer(cfg, n)
    theta = jnp.zeros(2)
    state = opt.init(theta)
    steps = []
    for _ in range(n + 2):
        updates, state = opt.update(jnp.ones(2), state, theta)
        steps.append(float(updates[0]))
    np.testing.assert_allclose(steps, [-0.4, -0.3, -0.2, -0.1, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("norm", [10.0, 0.1])
def test_clipping_limits_global_norm(norm):
    clip = 0.5
    cfg = Config(optimizer="sgd", momentum=0.0, lr=1.0, lr_anneal=False, max_grad_norm=clip)
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[12.0]])}   # global norm 13
    grads = {k: v * norm / 13.0 for k, v in grads.items()}
    params = {k: jnp.zeros_like(v) for k, v in grads.items()}
    opt = make_optimizer(cfg, 1)
    updates, _ = opt.update(grads, opt.init(params), params)
    global_norm = float(optax.tree.norm(updates))
    np.testing.assert_allclose(global_norm, min(norm, clip), rtol=1e-5)
    # Clipping rescales; it keeps the direction.
    np.testing.assert_allclose(updates["a"] / global_norm, -grads["a"] / norm, rtol=1e-5)


def test_clipping_disabled_with_zero():
    cfg = Config(optimizer="sgd", momentum=0.0, lr=1.0, lr_anneal=False, max_grad_norm=0.0)
    grads = jnp.array([30.0, 40.0])
    opt = make_optimizer(cfg, 1)
    updates, _ = opt.update(grads, opt.init(grads), grads)
    np.testing.assert_allclose(optax.tree.norm(updates), 50.0, rtol=1e-6)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(Config(optimizer="adam"), 10)  # type: ignore[arg-type]
