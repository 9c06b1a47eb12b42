"""Optimisers in the paper's forms, checked by hand: the optax chain (``optim.make_optax``),
the schedule (``OptSpec.lr_at``) and the in-place step of the shared store
(``optim.apply_in_place``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a3c_jax.core import optim
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.core.optim import OptSpec

GRADS = [np.array([0.5, -2.0, 0.0], np.float32),
         np.array([1.0, 1.0, -3.0], np.float32),
         np.array([-0.2, 0.4, 1.5], np.float32)]


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """The sync driver's optimiser for ``config``: the chain of its resolved ``OptSpec``,
    its schedule read at ``steps_per_update`` env steps per update."""
    return optim.make_optax(OptSpec.from_config(resolve(config)), config.steps_per_update)


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
    ours = _apply(make_optimizer(cfg), theta0, GRADS)
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
    shared = _apply(make_optimizer(Config(optimizer="rmsprop", **kw)), theta0, GRADS)
    local = _apply(make_optimizer(Config(optimizer="rmsprop_local", **kw)), theta0, GRADS)
    np.testing.assert_array_equal(shared[-1], local[-1])


def test_momentum_sgd_formula():
    """m <- mu m + d;  theta <- theta - lr m."""
    lr, mu = 0.1, 0.9
    cfg = Config(optimizer="sgd", lr=lr, momentum=mu, lr_anneal=False, max_grad_norm=0.0)
    theta0 = jnp.zeros(3)
    ours = _apply(make_optimizer(cfg), theta0, GRADS)
    theta, m = np.zeros(3), np.zeros(3)
    for step, d in enumerate(GRADS, start=1):
        m = mu * m + d
        theta = theta - lr * m
        np.testing.assert_allclose(ours[step], theta, rtol=1e-5, atol=1e-6)


def test_annealed_learning_rate_reaches_zero():
    """lr falls linearly to 0 at ``anneal_steps`` env steps (= total_steps with
    lr_anneal_steps 0, the budget's schedule)."""
    cfg = Config(lr=0.01, lr_anneal=True, lr_anneal_steps=0, total_steps=10_000)
    spec = OptSpec.from_config(resolve(cfg))
    assert spec.anneal_steps == 10_000
    np.testing.assert_allclose(spec.lr_at(0), 0.01, rtol=1e-6)
    np.testing.assert_allclose(spec.lr_at(5_000), 0.005, rtol=1e-6)
    np.testing.assert_allclose(spec.lr_at(9_000), 0.001, rtol=1e-5)   # last update still moves
    assert float(spec.lr_at(10_000)) == 0.0
    assert float(spec.lr_at(50_000)) == 0.0
    # the same values on NumPy and traced arguments (no branch on t)
    ts = np.array([0, 5_000, 9_000, 10_000, 50_000])
    want = [0.01, 0.005, 0.001, 0.0, 0.0]
    np.testing.assert_allclose(spec.lr_at(ts), want, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(jax.jit(spec.lr_at)(jnp.asarray(ts)), want, rtol=1e-5,
                               atol=1e-12)
    fixed = OptSpec.from_config(resolve(Config(lr=0.01, lr_anneal=False)))
    assert fixed.anneal_steps == 0
    assert fixed.lr_at(0) == fixed.lr_at(10 ** 9) == 0.01


def test_default_anneal_horizon_does_not_depend_on_the_budget():
    """By default the schedule spans ``lr_anneal_steps`` env steps whatever ``total_steps``
    is: a 300k and a 1M run have the same learning rate at every env step."""
    specs = [OptSpec.from_config(resolve(Config(lr=0.01, total_steps=n)))
             for n in (300_000, 1_000_000)]
    assert specs[0].anneal_steps == specs[1].anneal_steps == Config().lr_anneal_steps > 0
    ts = np.array([0, 100_000, 299_999])
    np.testing.assert_array_equal(specs[0].lr_at(ts), specs[1].lr_at(ts))
    assert float(specs[1].lr_at(Config().lr_anneal_steps)) == 0.0
    with pytest.raises(ValueError, match="lr_anneal_steps"):
        resolve(Config(lr_anneal_steps=-1))


def test_config_json_before_the_fixed_horizon_keeps_the_budget_schedule():
    """A config.json written before ``lr_anneal_steps`` annealed over its budget; it still
    does when read back (a resumed run continues on the same schedule)."""
    old = {k: v for k, v in Config(total_steps=20_000).to_dict().items()
           if k != "lr_anneal_steps"}
    spec = OptSpec.from_config(resolve(Config.from_dict(old)))
    assert spec.anneal_steps == 20_000


def test_opt_spec_needs_a_learning_rate():
    with pytest.raises(TypeError):
        OptSpec()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="resolved"):
        OptSpec.from_config(Config(algo="a3c"))   # lr is auto until resolved
    assert OptSpec.from_config(resolve(Config(algo="q1"))).lr == 1e-3


def test_annealed_optimizer_stops_moving_at_the_end():
    """With sgd (no momentum) the update is exactly -lr_k d: lr_k falls linearly to 0, read
    at k * steps_per_update env steps for update k."""
    n = 4
    cfg = Config(optimizer="sgd", momentum=0.0, lr=0.4, lr_anneal=True, max_grad_norm=0.0,
                 num_envs=2, t_max=5, total_steps=40, lr_anneal_steps=40)
    assert cfg.steps_per_update == 10 and cfg.total_steps // cfg.steps_per_update == n
    opt = make_optimizer(cfg)
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
    opt = make_optimizer(cfg)
    updates, _ = opt.update(grads, opt.init(params), params)
    global_norm = float(optax.tree.norm(updates))
    np.testing.assert_allclose(global_norm, min(norm, clip), rtol=1e-5)
    # Clipping rescales; it keeps the direction.
    np.testing.assert_allclose(updates["a"] / global_norm, -grads["a"] / norm, rtol=1e-5)


def test_clipping_disabled_with_zero():
    cfg = Config(optimizer="sgd", momentum=0.0, lr=1.0, lr_anneal=False, max_grad_norm=0.0)
    grads = jnp.array([30.0, 40.0])
    opt = make_optimizer(cfg)
    updates, _ = opt.update(grads, opt.init(grads), grads)
    np.testing.assert_allclose(optax.tree.norm(updates), 50.0, rtol=1e-6)


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer(Config(optimizer="adam"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer"):
        OptSpec(lr=0.01, name="adam")  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", [10.0, 0.1])
def test_clip_grads_is_the_chain_s_clipping(norm):
    """``clip_grads`` (the async worker's clipping) rescales exactly like the chain's first
    transformation; with max_grad_norm 0 it is the identity."""
    grads = {"a": jnp.array([3.0, 4.0]) * norm / 13.0, "b": jnp.array([[12.0]]) * norm / 13.0}
    spec = OptSpec(lr=1.0, max_grad_norm=0.5)
    clipped = optim.clip_grads(grads, spec)
    np.testing.assert_allclose(float(optax.tree.norm(clipped)), min(norm, 0.5), rtol=1e-5)
    chain = optax.clip_by_global_norm(0.5)
    want, _ = chain.update(grads, chain.init(grads))
    for k in grads:
        np.testing.assert_allclose(clipped[k], want[k], rtol=1e-6)
    same = optim.clip_grads(grads, OptSpec(lr=1.0, max_grad_norm=0.0))
    for k in grads:
        np.testing.assert_array_equal(same[k], grads[k])


ULP = np.finfo(np.float32).eps   # 1.19e-7


def _assert_within_ulps(x, ref, scale, ulps, msg):
    """|x - ref| <= ulps ULP scale, element by element, ``scale`` the size of everything
    summed into ``ref`` (a sum a + b rounds to within ulp(|a| + |b|), however much the two
    cancel), so the bound is in float32 ulps of what was computed."""
    err = np.abs(np.asarray(x, np.float64) - np.asarray(ref, np.float64))
    bound = ulps * ULP * np.asarray(scale, np.float64)
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (f"{msg}: element {worst} off by {err[worst]:.3g} > "
                                  f"{bound[worst]:.3g} ({ulps} ulps of {scale[worst]:.3g})")


@pytest.mark.parametrize("name", ["rmsprop", "rmsprop_local", "sgd", "sgd_paper"])
@pytest.mark.parametrize("anneal, clip", [(False, 0.0), (True, 1.0)])
def test_the_three_executors_of_the_rule_agree(name, anneal, clip):
    """One ``OptSpec``, three executors of its rule on the same gradients: the sync driver's
    optax chain (``make_optax``), the store's in-place kernel (``apply_in_place``) and the
    emulator's pure form (``optim.step``), the last two on gradients clipped by the jitted
    ``clip_grads`` as the worker clips them, with lr read at the update's T_before = k *
    steps_per_update.

    Tolerance: after step k (from 0) they agree to 2 (k + 1) float32 ulps of the magnitude
    of what was summed. The three compute the same products and sums in the same order, but
    XLA may fuse a multiply-add (one rounding fewer) and evaluate rsqrt otherwise than
    1 / sqrt, and a difference carries into the later steps. At step 0 the bound is 2 ulps
    of RMSProp's statistic itself (a sum of positive terms): 1 - float32(0.99) =
    0.0099999905 in place of 0.01, as the kernel once had it, is 8 ulps off, and fails."""
    rng = np.random.default_rng(0)
    steps_per_update, n = 10, 6
    p0 = rng.normal(size=200).astype(np.float32)
    grads = [(3.0 * rng.normal(size=200)).astype(np.float32) for _ in range(n)]
    spec = OptSpec(lr=0.01, name=name, decay=0.99, eps=1e-5, momentum=0.9,
                   max_grad_norm=clip, anneal_steps=(n + 1) * steps_per_update if anneal else 0)
    c = optim.rule(spec)
    opt = optim.make_optax(spec, steps_per_update)
    chain_p, state = jnp.asarray(p0), opt.init(jnp.asarray(p0))
    chain_step = jax.jit(lambda d, s, p: opt.update(d, s, p))
    clip_grads = jax.jit(lambda d: optim.clip_grads(d, spec))
    pure = jax.jit(lambda p, b, d, k: optim.step(spec, p, b, d, spec.lr_at(k * steps_per_update)))
    pure_p, pure_buf = jnp.asarray(p0), jnp.zeros_like(p0)
    theta, buf = p0.copy(), np.zeros_like(p0)
    buf_mag = np.zeros(p0.shape)
    for k, d in enumerate(grads):
        p_before = np.asarray(chain_p, np.float64)
        upd, state = chain_step(jnp.asarray(d), state, chain_p)
        chain_p = optax.apply_updates(chain_p, upd)
        d_clipped = clip_grads(jnp.asarray(d))
        pure_p, pure_buf = pure(pure_p, pure_buf, d_clipped, jnp.int32(k))
        lr = spec.lr_at(k * steps_per_update)
        optim.apply_in_place(spec, theta, np.asarray(d_clipped), lr, buf)
        pre = state[1][0]   # (clip, (preconditioner, ...)): the statistics' state
        chain_buf = getattr(pre, {"sgd": "trace", "sgd_paper": "ema"}.get(name, "nu"))
        term = np.abs(np.asarray(d_clipped, np.float64)) ** (2 if c.rms else 1)
        buf_mag = c.gain * term + c.decay * buf_mag
        p_mag = np.abs(p_before) + np.abs(np.asarray(chain_p, np.float64) - p_before)
        if not c.rms:   # the step is lr m: its error is that of m, whatever cancelled in m
            p_mag += lr * buf_mag
        for who, p, b in (("in-place", theta, buf), ("pure", pure_p, pure_buf)):
            _assert_within_ulps(b, chain_buf, buf_mag, 2 * (k + 1), f"{who} stats, step {k}")
            _assert_within_ulps(p, chain_p, p_mag, 2 * (k + 1), f"{who} params, step {k}")
    assert not np.allclose(theta, p0)


@pytest.mark.parametrize("applied", ["optax", "in_place"])
def test_sgd_paper_matches_the_paper_formula(applied):
    """The paper's momentum SGD (supplementary, optimisation): m <- a m + (1 - a) d;
    theta <- theta - lr m; against optax's form m <- a m + d, whose step is larger."""
    lr, a = 0.1, 0.8
    theta0 = np.array([1.0, 2.0, 3.0], np.float32)
    spec = OptSpec(lr=lr, name="sgd_paper", momentum=a)
    if applied == "optax":
        ours = [np.asarray(x) for x in _apply(optim.make_optax(spec, 1), jnp.asarray(theta0),
                                              GRADS)]
    else:
        theta, buf, ours = theta0.copy(), np.zeros(3, np.float32), [theta0.copy()]
        for d in GRADS:
            optim.apply_in_place(spec, theta, d, lr, buf)
            ours.append(theta.copy())
    theta, m = theta0.astype(np.float64), np.zeros(3)
    for step, d in enumerate(GRADS, start=1):
        m = a * m + (1 - a) * d
        theta = theta - lr * m
        np.testing.assert_allclose(ours[step], theta, rtol=1e-5, atol=1e-6)
    optax_form = _apply(optim.make_optax(OptSpec(lr=lr, name="sgd", momentum=a), 1),
                        jnp.asarray(theta0), GRADS)
    assert np.abs(np.asarray(optax_form[1]) - ours[1]).max() > 1e-2


@pytest.mark.parametrize("name", ["rmsprop", "sgd_paper"])
def test_in_place_step_flushes_subnormal_statistics_like_xla(name):
    """Statistics that would decay below float32's smallest normal number are stored as 0, as
    XLA:CPU flushes them (a subnormal buffer makes every later step take x86's slow path);
    normal values follow the method's formula."""
    tiny = np.finfo(np.float32).tiny
    spec = OptSpec(name=name, lr=1e-3, decay=0.99, eps=1e-5, momentum=0.9)
    theta = np.linspace(-1, 1, 6).astype(np.float32)
    # a normal gradient, two whose squared terms are subnormal, and zeros on decaying stats
    d = np.array([1e-3, 1e-19, 3e-20, 0.0, 0.0, 0.0], np.float32)
    buf = np.array([1e-6, 0.0, 0.0, 5e-38, 1.18e-38, 0.0], np.float32)
    ref_theta, ref_buf = theta.copy(), buf.copy()
    for _ in range(3):
        optim.apply_in_place(spec, theta, d, spec.lr, buf)
        assert np.all((buf == 0) | (np.abs(buf) >= tiny)), buf
    # the normal element follows the formula exactly
    for _ in range(3):
        if name == "rmsprop":
            ref_buf[0] = ref_buf[0] * np.float32(0.99) + np.float32(0.01) * d[0] * d[0]
            ref_theta[0] -= np.float32(1e-3) * d[0] / np.sqrt(ref_buf[0] + np.float32(1e-5))
        else:
            ref_buf[0] = ref_buf[0] * np.float32(0.9) + np.float32(0.1) * d[0]
            ref_theta[0] -= np.float32(1e-3) * ref_buf[0]
    np.testing.assert_allclose(theta[0], ref_theta[0], rtol=1e-6)
    np.testing.assert_allclose(buf[0], ref_buf[0], rtol=1e-6)
    assert buf[3] == 0 or buf[3] >= tiny
    assert buf[4] == 0                       # 1.18e-38 decays below tiny at once
