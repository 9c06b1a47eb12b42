"""Policy distributions: hand values and scipy for the Gaussian, the categorical path unchanged,
and the actor-critic loss read through the distribution interface."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from a3c_jax.core import distributions, losses, networks

# One Gaussian with D = 2: mu = (0, 1), sigma^2 = (1, 4); the action a = (1, -1).
MEAN = np.array([0.0, 1.0], np.float32)
VAR = np.array([1.0, 4.0], np.float32)
ACTION = np.array([1.0, -1.0], np.float32)
# log N(1; 0, 1) + log N(-1; 1, 4) = -0.5 (1 + ln 2pi) - 0.5 (4/4 + ln 4 + ln 2pi)
HAND_LOGP = -0.5 * (1.0 + np.log(2 * np.pi)) - 0.5 * (1.0 + np.log(4.0) + np.log(2 * np.pi))
# sum_d 0.5 (ln(2 pi var_d) + 1)
HAND_ENTROPY = 0.5 * (np.log(2 * np.pi) + 1.0) + 0.5 * (np.log(2 * np.pi * 4.0) + 1.0)


class GaussianTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_values(self):
        d = distributions.DiagGaussian(jnp.asarray(MEAN), jnp.asarray(VAR))
        logp = self.variant(lambda d, a: d.log_prob(a))(d, jnp.asarray(ACTION))
        ent = self.variant(lambda d: d.entropy())(d)
        np.testing.assert_allclose(HAND_LOGP, -3.5310, atol=1e-4)   # the arithmetic above
        np.testing.assert_allclose(logp, HAND_LOGP, rtol=1e-6)
        np.testing.assert_allclose(ent, HAND_ENTROPY, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_against_scipy_batched(self):
        rng = np.random.default_rng(0)
        mean = rng.normal(size=(5, 3, 4)).astype(np.float32)
        var = rng.uniform(0.05, 3.0, size=(5, 3, 4)).astype(np.float32)
        a = rng.normal(size=(5, 3, 4)).astype(np.float32) * 2
        d = distributions.DiagGaussian(jnp.asarray(mean), jnp.asarray(var))
        logp = self.variant(lambda d, a: d.log_prob(a))(d, jnp.asarray(a))
        ent = self.variant(lambda d: d.entropy())(d)
        chex.assert_shape([logp, ent], (5, 3))
        sd = np.sqrt(var.astype(np.float64))
        np.testing.assert_allclose(logp, stats.norm.logpdf(a, mean, sd).sum(-1), rtol=1e-5)
        np.testing.assert_allclose(ent, stats.norm.entropy(mean, sd).sum(-1), rtol=1e-5)

    def test_paper_head_softplus_variance(self):
        mean = jnp.array([[0.5, -0.3]])
        pre = jnp.array([[0.0, -3.0]])
        d = distributions.gaussian_from_outputs(mean, pre, min_var=0.0)
        np.testing.assert_allclose(d.var, np.log1p(np.exp(np.asarray(pre))), rtol=1e-6)
        np.testing.assert_array_equal(d.mode(), mean)
        # A vanishing softplus keeps a floor, so log-probs stay finite.
        tiny = distributions.gaussian_from_outputs(mean, jnp.full((1, 2), -200.0))
        assert np.all(np.asarray(tiny.var) > 0)
        assert np.isfinite(float(tiny.log_prob(jnp.zeros((1, 2)))[0]))

    def test_sample_moments_and_shape(self):
        d = distributions.DiagGaussian(jnp.asarray(MEAN), jnp.asarray(VAR))
        keys = jax.random.split(jax.random.key(0), 20_000)
        x = np.asarray(jax.vmap(d.sample)(keys))
        assert x.shape == (20_000, 2) and x.dtype == np.float32
        np.testing.assert_allclose(x.mean(0), MEAN, atol=0.05)
        np.testing.assert_allclose(x.var(0), VAR, rtol=0.05)


class CategoricalTest(chex.TestCase):

    def test_log_prob_entropy_against_numpy(self):
        logits = np.array([[0.0, np.log(3.0)], [1.0, -1.0]], np.float32)
        d = distributions.Categorical(jnp.asarray(logits))
        p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        np.testing.assert_allclose(d.log_prob(jnp.array([1, 0])),
                                   np.log([p[0, 1], p[1, 0]]), rtol=1e-6)
        np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(-1), rtol=1e-6)
        np.testing.assert_array_equal(d.mode(), [1, 0])
        np.testing.assert_allclose(losses.categorical_entropy(jnp.asarray(logits)),
                                   d.entropy(), rtol=0, atol=0)

    def test_sampling_is_what_it_always_was(self):
        logits = jax.random.normal(jax.random.key(1), (7, 4))
        key = jax.random.key(2)
        np.testing.assert_array_equal(distributions.Categorical(logits).sample(key),
                                      jax.random.categorical(key, logits))

    def test_as_distribution(self):
        logits = jnp.zeros((3, 2))
        assert isinstance(distributions.as_distribution(logits), distributions.Categorical)
        g = distributions.DiagGaussian(jnp.zeros(2), jnp.ones(2))
        assert distributions.as_distribution(g) is g


# --- the actor-critic loss through the distribution interface -------------------------------

LOSS = functools.partial(losses.actor_critic_loss_dist, value_coef=0.5, entropy_coef=1e-4)


def test_categorical_loss_is_the_distribution_loss_exactly():
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(6, 3)).astype(np.float32))
    v, g = (jnp.asarray(rng.normal(size=6).astype(np.float32)) for _ in range(2))
    a = jnp.asarray(rng.integers(0, 3, 6).astype(np.int32))
    for reduction in ("sum", "mean"):
        old = jax.value_and_grad(lambda z: losses.actor_critic_loss(
            z, v, a, g, value_coef=0.5, entropy_coef=0.01, reduction=reduction), has_aux=True)
        new = jax.value_and_grad(lambda z: losses.actor_critic_loss_dist(
            distributions.Categorical(z), v, a, g, value_coef=0.5, entropy_coef=0.01,
            reduction=reduction), has_aux=True)
        chex.assert_trees_all_equal(old(logits), new(logits))


def test_gaussian_loss_hand_computed():
    """T = 1, D = 2: L = -log pi(a) * (G - V) + 0.5 (G - V)^2 - beta H, and the gradient with
    respect to the mean is -(a - mu) / var * (G - V)."""
    d = distributions.DiagGaussian(jnp.asarray(MEAN)[None], jnp.asarray(VAR)[None])
    v, g = jnp.array([1.0]), jnp.array([3.0])
    (loss, m), grad = jax.value_and_grad(
        lambda d: LOSS(d, v, jnp.asarray(ACTION)[None], g), has_aux=True)(d)
    adv = 2.0
    np.testing.assert_allclose(m["policy_loss"], -HAND_LOGP * adv, rtol=1e-6)
    np.testing.assert_allclose(m["value_loss"], adv ** 2, rtol=1e-6)
    np.testing.assert_allclose(m["entropy"], HAND_ENTROPY, rtol=1e-6)
    np.testing.assert_allclose(loss, -HAND_LOGP * adv + 0.5 * 4.0 - 1e-4 * HAND_ENTROPY,
                               rtol=1e-6)
    np.testing.assert_allclose(grad.mean[0], -(ACTION - MEAN) / VAR * adv, rtol=1e-5)
    # d/dvar of [-log pi * adv - beta H] = -adv ((a - mu)^2 / (2 var^2) - 1 / (2 var))
    #                                      - beta / (2 var)
    want = (-adv * (np.square(ACTION - MEAN) / (2 * VAR ** 2) - 1 / (2 * VAR))
            - 1e-4 / (2 * VAR))
    np.testing.assert_allclose(grad.var[0], want, rtol=1e-4, atol=1e-7)


def test_given_advantages_replace_g_minus_v_in_the_policy_term_only():
    d = distributions.Categorical(jnp.zeros((3, 2)))
    v, g, a = jnp.zeros(3), jnp.array([1.0, 2.0, 3.0]), jnp.array([0, 1, 0])
    _, base = LOSS(d, v, a, g)
    _, m = LOSS(d, v, a, g, adv_t=jnp.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(m["policy_loss"], -np.log(0.5) * 0.0, atol=1e-7)
    np.testing.assert_allclose(m["value_loss"], base["value_loss"])
    np.testing.assert_allclose(base["policy_loss"], -np.log(0.5) * 6.0, rtol=1e-6)


def test_normalize_advantages():
    adv = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    z = losses.normalize_advantages(adv)
    np.testing.assert_allclose(float(jnp.mean(z)), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(jnp.std(z)), 1.0, rtol=1e-5)


def test_gaussian_actor_critic_outputs():
    net = networks.ActorCritic(action_dim=3, discrete=False, hidden=(8,))
    params = net.init(jax.random.key(0), jnp.zeros((1, 5)))
    dist, value = net.apply(params, jax.random.normal(jax.random.key(1), (4, 2, 5)))
    assert isinstance(dist, distributions.DiagGaussian)
    chex.assert_shape([dist.mean, dist.var], (4, 2, 3))
    chex.assert_shape(value, (4, 2))
    assert np.all(np.asarray(dist.var) > 0)
    # Heads start small: mean ~ 0 and variance ~ softplus(0) = ln 2.
    assert float(jnp.abs(dist.mean).max()) < 0.1
    np.testing.assert_allclose(dist.var, np.log(2.0), atol=0.05)


@pytest.mark.parametrize("discrete", [True, False])
def test_segment_loss_reads_the_network_distribution(discrete):
    """actor_critic_segment_loss with a Gaussian network equals the per-env distribution loss
    summed over envs (combine "sum"; and the categorical network gives the categorical loss)."""
    from a3c_jax.core.rollout import Trajectory
    from a3c_jax.core.returns import nstep_returns

    T, B, D = 4, 3, 5
    rng = np.random.default_rng(0)
    f32 = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))  # noqa: E731
    net = (networks.ActorCritic(action_dim=3, hidden=(8,)) if discrete
           else networks.ActorCritic(action_dim=2, discrete=False, hidden=(8,)))
    params = net.init(jax.random.key(0), jnp.zeros((1, D)))
    action = (jnp.asarray(rng.integers(0, 3, (T, B)).astype(np.int32)) if discrete
              else f32(T, B, 2))
    terminated = jnp.zeros((T, B), bool).at[1, 0].set(True)
    traj = Trajectory(obs=f32(T, B, D), action=action, reward=f32(T, B), terminated=terminated,
                      truncated=jnp.zeros((T, B), bool).at[2, 1].set(True),
                      final_obs=f32(T, B, D), completed_return=jnp.zeros((T, B)),
                      completed_length=jnp.zeros((T, B), jnp.int32))
    cfg = losses.LossConfig(gamma=0.9, gae_lambda=0.8, value_coef=0.5, entropy_coef=1e-3,
                            combine="sum")
    loss, m = losses.actor_critic_segment_loss(params, net.apply, traj, cfg)
    pi, v = net.apply(params, traj.obs)
    _, v_next = net.apply(params, traj.final_obs)
    per = []
    for b in range(B):
        g = nstep_returns(traj.reward[:, b], traj.terminated[:, b], traj.truncated[:, b],
                          v_next[:, b], cfg.gamma, cfg.gae_lambda)
        d_b = jax.tree.map(lambda x: x[:, b], distributions.as_distribution(pi))
        per.append(losses.actor_critic_loss_dist(d_b, v[:, b], traj.action[:, b], g,
                                                 value_coef=0.5, entropy_coef=1e-3)[0])
    np.testing.assert_allclose(loss, np.sum(per), rtol=1e-5)
    assert np.isfinite(float(m["entropy"]))
