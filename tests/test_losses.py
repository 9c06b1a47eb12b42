"""Actor-critic loss: hand-computed values, gradients, reductions, shape checks."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import losses
from a3c_jax.config.schema import Config, Resolved
from a3c_jax.config.defaults import resolve
from a3c_jax.core.returns import nstep_returns
from a3c_jax.core.rollout import Trajectory

VALUE_COEF, ENTROPY_COEF = 0.5, 0.01


def _np_log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _np_terms(logits, v, a, g):
    """Per-step policy, value and entropy terms, written out in numpy."""
    logp = _np_log_softmax(logits)
    p = np.exp(logp)
    adv = np.asarray(g, np.float64) - np.asarray(v, np.float64)
    policy = -logp[np.arange(len(a)), a] * adv
    value = adv ** 2
    entropy = -(p * logp).sum(-1)
    return policy, value, entropy


# T = 2, A = 2. pi_0 = softmax(0, ln 3) = (1/4, 3/4), pi_1 = (1/2, 1/2).
LOGITS = np.array([[0.0, np.log(3.0)], [0.0, 0.0]], np.float32)
VALUES = np.array([1.0, 2.0], np.float32)
ACTIONS = np.array([1, 0], np.int32)
RETURNS = np.array([3.0, 1.0], np.float32)
# Advantages (2, -1); log pi(a) = (ln 3/4, ln 1/2).
HAND_POLICY = -np.log(0.75) * 2.0 - np.log(0.5) * (-1.0)          # = -0.11778...
HAND_VALUE = 2.0 ** 2 + (-1.0) ** 2                                 # = 5
HAND_ENTROPY = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)) + np.log(2.0)


def _loss(reduction="sum", value_coef=VALUE_COEF, entropy_coef=ENTROPY_COEF):
    return functools.partial(losses.actor_critic_loss, value_coef=value_coef,
                             entropy_coef=entropy_coef, reduction=reduction)


class ActorCriticLossTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_sum(self):
        loss, m = self.variant(_loss("sum"))(jnp.asarray(LOGITS), jnp.asarray(VALUES),
                                             jnp.asarray(ACTIONS), jnp.asarray(RETURNS))
        np.testing.assert_allclose(HAND_POLICY, -0.117783, atol=1e-6)  # the arithmetic above
        np.testing.assert_allclose(m["policy_loss"], HAND_POLICY, rtol=1e-5)
        np.testing.assert_allclose(m["value_loss"], HAND_VALUE, rtol=1e-6)
        np.testing.assert_allclose(m["entropy"], HAND_ENTROPY, rtol=1e-5)
        expected = HAND_POLICY + VALUE_COEF * HAND_VALUE - ENTROPY_COEF * HAND_ENTROPY
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
        np.testing.assert_allclose(m["total"], loss, rtol=0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed_mean(self):
        loss, m = self.variant(_loss("mean"))(jnp.asarray(LOGITS), jnp.asarray(VALUES),
                                              jnp.asarray(ACTIONS), jnp.asarray(RETURNS))
        expected = (HAND_POLICY + VALUE_COEF * HAND_VALUE - ENTROPY_COEF * HAND_ENTROPY) / 2
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
        np.testing.assert_allclose(m["value_loss"], HAND_VALUE / 2, rtol=1e-6)

    def test_matches_numpy_on_random_inputs(self):
        rng = np.random.default_rng(0)
        T, A = 7, 4
        logits = rng.normal(size=(T, A)).astype(np.float32) * 2
        v, g = rng.normal(size=T).astype(np.float32), rng.normal(size=T).astype(np.float32)
        a = rng.integers(0, A, size=T).astype(np.int32)
        policy, value, entropy = _np_terms(logits, v, a, g)
        loss, m = jax.jit(_loss("sum", 0.25, 0.1))(logits, v, a, g)
        np.testing.assert_allclose(m["policy_loss"], policy.sum(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(m["value_loss"], value.sum(), rtol=1e-5)
        np.testing.assert_allclose(m["entropy"], entropy.sum(), rtol=1e-5)
        np.testing.assert_allclose(
            loss, policy.sum() + 0.25 * value.sum() - 0.1 * entropy.sum(), rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_uniform_policy_entropy_is_log_num_actions(self):
        for A in (2, 7):
            for const in (0.0, 5.0):
                logits = jnp.full((3, A), const)
                _, m = self.variant(_loss("mean"))(logits, jnp.zeros(3), jnp.zeros(3, jnp.int32),
                                                   jnp.zeros(3))
                np.testing.assert_allclose(m["entropy"], np.log(A), rtol=1e-6)
                np.testing.assert_allclose(losses.categorical_entropy(logits), np.log(A) * np.ones(3),
                                           rtol=1e-6)

    def test_policy_term_sends_no_gradient_to_values(self):
        """The advantage is not differentiated: with value_coef = 0 (and no entropy) dL/dv = 0."""
        fn = _loss("sum", value_coef=0.0, entropy_coef=0.0)
        grad_v = jax.grad(lambda v: fn(LOGITS, v, ACTIONS, RETURNS)[0])(jnp.asarray(VALUES))
        np.testing.assert_array_equal(grad_v, np.zeros(2, np.float32))
        # ... while the policy term itself is not zero, so the check is not vacuous.
        assert abs(float(fn(LOGITS, VALUES, ACTIONS, RETURNS)[0])) > 0.1

    def test_returns_are_constants(self):
        grad_g = jax.grad(lambda g: _loss()(LOGITS, VALUES, ACTIONS, g)[0])(jnp.asarray(RETURNS))
        np.testing.assert_array_equal(grad_g, np.zeros(2, np.float32))

    def test_policy_gradient_wrt_logits(self):
        """d/dz_t [-log pi(a_t) * adv_t] = -adv_t * (onehot(a_t) - pi_t)."""
        fn = _loss("sum", value_coef=0.0, entropy_coef=0.0)
        grad_z = jax.grad(lambda z: fn(z, VALUES, ACTIONS, RETURNS)[0])(jnp.asarray(LOGITS))
        pi = np.exp(_np_log_softmax(LOGITS))
        onehot = np.eye(2)[ACTIONS]
        adv = (RETURNS - VALUES)[:, None]
        np.testing.assert_allclose(grad_z, -adv * (onehot - pi), rtol=1e-5, atol=1e-7)

    def test_entropy_gradient_wrt_logits(self):
        """d/dz_j [-beta H] = beta * p_j (log p_j + H): the bonus pushes towards uniform."""
        beta = 0.3
        g_equal_v = VALUES  # zero advantage and zero value error: only the entropy term is left
        fn = _loss("sum", value_coef=1.0, entropy_coef=beta)
        grad_z = jax.grad(lambda z: fn(z, VALUES, ACTIONS, g_equal_v)[0])(jnp.asarray(LOGITS))
        logp = _np_log_softmax(LOGITS)
        p = np.exp(logp)
        H = -(p * logp).sum(-1, keepdims=True)
        np.testing.assert_allclose(grad_z, beta * p * (logp + H), rtol=1e-5, atol=1e-7)
        assert np.abs(grad_z[0]).max() > 1e-3   # non-uniform row: non-zero gradient
        np.testing.assert_allclose(grad_z[1], 0.0, atol=1e-7)  # uniform row: stationary

    def test_sum_and_mean_differ_by_exactly_T(self):
        rng = np.random.default_rng(1)
        T, A = 7, 4   # the shapes of test_matches_numpy_on_random_inputs
        args = (rng.normal(size=(T, A)).astype(np.float32),
                rng.normal(size=T).astype(np.float32),
                rng.integers(0, A, size=T).astype(np.int32),
                rng.normal(size=T).astype(np.float32))
        loss_s, m_s = _loss("sum")(*args)
        loss_m, m_m = _loss("mean")(*args)
        for k in ("total", "policy_loss", "value_loss", "entropy"):
            np.testing.assert_allclose(m_s[k], T * m_m[k], rtol=1e-5, atol=1e-7, err_msg=k)
        np.testing.assert_allclose(loss_s, T * loss_m, rtol=1e-5)
        # and for the gradients
        g_s = jax.grad(lambda z: _loss("sum")(z, *args[1:])[0])(args[0])
        g_m = jax.grad(lambda z: _loss("mean")(z, *args[1:])[0])(args[0])
        np.testing.assert_allclose(g_s, T * g_m, rtol=1e-5, atol=1e-7)

    def test_output_shapes_and_dtypes(self):
        loss, m = _loss()(LOGITS, VALUES, ACTIONS, RETURNS)
        chex.assert_shape(loss, ())
        chex.assert_type(loss, jnp.float32)
        assert set(m) == {"total", "policy_loss", "value_loss", "entropy"}
        chex.assert_shape(list(m.values()), ())
        chex.assert_type(list(m.values()), jnp.float32)

    def test_rank_and_type_assertions(self):
        ok = (jnp.asarray(LOGITS), jnp.asarray(VALUES), jnp.asarray(ACTIONS),
              jnp.asarray(RETURNS))
        bad = {
            "logits rank 1": (ok[0][0], *ok[1:]),
            "logits rank 3": (ok[0][None], *ok[1:]),
            "values rank 2": (ok[0], ok[1][:, None], *ok[2:]),
            "actions rank 2": (*ok[:2], ok[2][:, None], ok[3]),
            "returns rank 0": (*ok[:3], ok[3][0]),
            "float actions": (*ok[:2], ok[2].astype(jnp.float32), ok[3]),
            "int returns": (*ok[:3], ok[3].astype(jnp.int32)),
        }
        for name, args in bad.items():
            with pytest.raises(AssertionError):
                _loss()(*args)
                pytest.fail(f"no assertion for {name}")

    def test_unknown_reduction(self):
        with pytest.raises(ValueError, match="reduction"):
            _loss("median")(LOGITS, VALUES, ACTIONS, RETURNS)


@pytest.mark.parametrize("reduction,scale", [("sum", 1.0), ("mean", 0.5)])
def test_value_gradient_is_2_value_coef_times_error(reduction, scale):
    """dL/dv_t = 2 value_coef (v_t - G_t), divided by T under mean; nothing from the policy."""
    vc = 0.7
    fn = _loss(reduction, value_coef=vc, entropy_coef=0.05)
    grad_v = jax.grad(lambda v: fn(LOGITS, v, ACTIONS, RETURNS)[0])(jnp.asarray(VALUES))
    np.testing.assert_allclose(grad_v, scale * 2 * vc * (VALUES - RETURNS), rtol=1e-6)


def _linear_apply(params, obs):
    """A network-free actor-critic: logits = obs W, value = obs w."""
    return obs @ params["W"], obs @ params["w"]


def _tiny_trajectory(T=4, B=3, D=5, A=3, seed=0):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))
    terminated = np.zeros((T, B), bool)
    truncated = np.zeros((T, B), bool)
    terminated[1, 0] = True        # env 0: episode ends mid-segment
    truncated[2, 1] = True         # env 1: time limit mid-segment
    traj = Trajectory(
        obs=f32(T, B, D), action=jnp.asarray(rng.integers(0, A, (T, B)).astype(np.int32)),
        reward=f32(T, B), terminated=jnp.asarray(terminated), truncated=jnp.asarray(truncated),
        final_obs=f32(T, B, D), completed_return=jnp.zeros((T, B)),
        completed_length=jnp.zeros((T, B), jnp.int32))
    params = {"W": f32(D, A), "w": f32(D)}
    return params, traj


# combine -> (the array-level reduction over each env's segment, how the B results combine)
COMBINE_AS_PER_ENV = {"sum": ("sum", np.sum), "env-mean": ("mean", np.mean),
                      "step-mean": ("sum", lambda xs, axis=0: np.sum(xs, axis=axis) / (4 * 3))}


@pytest.mark.parametrize("how", sorted(COMBINE_AS_PER_ENV))
def test_segment_loss_combines_per_env_losses(how):
    """Without a mask (fixed segments, T = 4, B = 3): sum = the sum of the per-env summed
    losses, env-mean = the mean of the per-env mean losses, step-mean = sum / (T B); the
    metrics and the gradient combine the same way."""
    reduction, over_envs = COMBINE_AS_PER_ENV[how]
    cfg = losses.loss_config(resolve(Config(gamma=0.9, gae_lambda=0.8, value_coef=0.3,
                                            entropy_coef=0.02, combine=how)))
    params, traj = _tiny_trajectory()
    B = traj.reward.shape[1]

    def per_env_loss(p, obs, final_obs, action, reward, terminated, truncated):
        """Env b's loss on its own, from the unbatched pieces (no vmap)."""
        logits, v = _linear_apply(p, obs)
        _, v_next = _linear_apply(p, final_obs)
        g = nstep_returns(reward, terminated, truncated, jax.lax.stop_gradient(v_next),
                          cfg.gamma, cfg.gae_lambda)
        return losses.actor_critic_loss(logits, v, action, g, value_coef=cfg.value_coef,
                                        entropy_coef=cfg.entropy_coef, reduction=reduction)

    def env_slice(b):
        return (traj.obs[:, b], traj.final_obs[:, b], traj.action[:, b], traj.reward[:, b],
                traj.terminated[:, b], traj.truncated[:, b])

    per_env = jax.jit(jax.value_and_grad(per_env_loss, has_aux=True))
    segment = jax.jit(jax.value_and_grad(
        lambda p: losses.actor_critic_segment_loss(p, _linear_apply, traj, cfg), has_aux=True))
    (loss, m), grad = segment(params)
    outs = [per_env(params, *env_slice(b)) for b in range(B)]
    np.testing.assert_allclose(loss, over_envs([l for (l, _), _ in outs]), rtol=1e-5)
    for k in ("total", "policy_loss", "value_loss"):
        np.testing.assert_allclose(m[k], over_envs([pm[k] for (_, pm), _ in outs]),
                                   rtol=1e-5, atol=1e-6, err_msg=k)
    # the logged entropy is the per-step mean under every combine (the loss' term is not)
    entropy_tb = losses.categorical_entropy(_linear_apply(params, traj.obs)[0])
    np.testing.assert_allclose(m["entropy"], np.mean(entropy_tb), rtol=1e-5)
    expected = jax.tree.map(lambda *gs: over_envs(np.stack(gs), axis=0),
                            *[g for _, g in outs])
    chex.assert_trees_all_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_segment_loss_bootstraps_from_final_obs():
    """A truncated step's target reads V(final_obs); an untruncated mid-segment one does not."""
    cfg = losses.loss_config(resolve(Config(gamma=0.9, gae_lambda=1.0)))
    params, traj = _tiny_trajectory()
    loss = jax.jit(lambda tr: losses.actor_critic_segment_loss(params, _linear_apply, tr, cfg)[0])
    base = loss(traj)
    # env 1 is truncated at t = 2: its final_obs matters.
    changed = loss(traj._replace(final_obs=traj.final_obs.at[2, 1].add(3.0)))
    assert abs(float(changed) - float(base)) > 1e-3
    # env 2 never ends: with lambda = 1 its mid-segment final_obs is unused.
    same = loss(traj._replace(final_obs=traj.final_obs.at[1, 2].add(3.0)))
    np.testing.assert_allclose(same, base, rtol=1e-6)


def test_loss_config_of_a_resolved_config():
    # the type says it: a Resolved has every auto field set (reward_scale, entropy_coef here)
    with pytest.raises(ValueError, match="resolved"):
        Resolved(gamma=0.9)
    cfg = losses.loss_config(resolve(Config(gamma=0.9, entropy_coef=0.02)))
    assert (cfg.gamma, cfg.entropy_coef, cfg.reward_scale) == (0.9, 0.02, 1.0)


# how each env's primitive loss (on its own steps) becomes the batch's: (reduction, combine)
COMBINE_PRIMITIVES = {"sum": ("sum", lambda ls, n: np.sum(ls)),
                      "env-mean": ("mean", lambda ls, n: np.mean(ls)),
                      "step-mean": ("sum", lambda ls, n: np.sum(ls) / np.sum(n))}


@pytest.mark.parametrize("how", sorted(COMBINE_PRIMITIVES))
def test_segment_loss_is_the_primitive_per_env_combined_under_a_mask(how):
    """Until-terminal segments (a mask): env 0 keeps steps 0-1 (terminated at 1), env 1 steps
    0-2 (truncated at 2), env 2 all 4. The segment loss must equal ``actor_critic_loss`` on
    each env's own steps, combined as ``how`` says, for every metric; the masked steps hold
    large rewards that must not leak in (the rollout zeroes them; here they would show).
    float32 both ways, the same operations: rtol 1e-6."""
    reduction, over_envs = COMBINE_PRIMITIVES[how]
    cfg = losses.loss_config(resolve(Config(gamma=0.9, gae_lambda=0.8, value_coef=0.3,
                                            entropy_coef=0.02, combine=how)))
    params, traj = _tiny_trajectory()
    lengths = np.array([2, 3, 4])
    mask = np.arange(4)[:, None] < lengths[None, :]
    traj = traj._replace(mask=jnp.asarray(mask),
                         reward=jnp.where(jnp.asarray(mask), traj.reward, 1e3))
    loss, m = jax.jit(lambda p: losses.actor_critic_segment_loss(p, _linear_apply, traj,
                                                                 cfg))(params)
    per_env = []
    for b, n in enumerate(lengths):
        logits, v = _linear_apply(params, traj.obs[:n, b])
        _, v_next = _linear_apply(params, traj.final_obs[:n, b])
        g = nstep_returns(traj.reward[:n, b], traj.terminated[:n, b], traj.truncated[:n, b],
                          v_next, cfg.gamma, cfg.gae_lambda)
        per_env.append(losses.actor_critic_loss(
            logits, v, traj.action[:n, b], g, value_coef=cfg.value_coef,
            entropy_coef=cfg.entropy_coef, reduction=reduction)[1])
    for k in ("total", "policy_loss", "value_loss"):
        want = over_envs(np.array([pm[k] for pm in per_env], np.float64), lengths)
        np.testing.assert_allclose(m[k], want, rtol=1e-6, atol=1e-7, err_msg=k)
    # the logged entropy: the mean over the marked steps, whatever ``how`` is
    entropy_tb = np.asarray(losses.categorical_entropy(_linear_apply(params, traj.obs)[0]))
    np.testing.assert_allclose(m["entropy"], entropy_tb[mask].mean(), rtol=1e-6)
    np.testing.assert_allclose(loss, m["total"])
