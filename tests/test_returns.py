"""Returns: hand-computed segments and cross-checks against rlax."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from absl.testing import parameterized

from a3c_jax.core.returns import nstep_q_returns, nstep_returns, one_step_targets

F, T_ = False, True


def _arrays(r, term, trunc, v_next):
    return (jnp.asarray(r, jnp.float32), jnp.asarray(term, bool), jnp.asarray(trunc, bool),
            jnp.asarray(v_next, jnp.float32))


# (name, r, terminated, truncated, v_next, gamma, lambda, expected G) — computed by hand.
HAND_CASES = (
    # No episode end: n-step returns bootstrapped from V at the segment end only.
    # G2 = 3 + .9*30 = 30; G1 = 2 + .9*30 = 29; G0 = 1 + .9*29 = 27.1
    ("segment_end_bootstrap", [1, 2, 3], [F, F, F], [F, F, F], [10, 20, 30], 0.9, 1.0,
     [27.1, 29.0, 30.0]),
    # Termination at t=1: no bootstrap there, and G0 must not read past the episode end.
    # G2 = 3 + .9*30 = 30; G1 = 2; G0 = 1 + .9*2 = 2.8
    ("terminated_mid_segment", [1, 2, 3], [F, T_, F], [F, F, F], [10, 20, 30], 0.9, 1.0,
     [2.8, 2.0, 30.0]),
    # Termination on the last step: nothing bootstraps.
    # G2 = 3; G1 = 2 + 2.7 = 4.7; G0 = 1 + .9*4.7 = 5.23
    ("terminated_last_step", [1, 2, 3], [F, F, T_], [F, F, F], [10, 20, 30], 0.9, 1.0,
     [5.23, 4.7, 3.0]),
    # Truncation at t=1: bootstrap from V(final_obs) = v_next[1] = 20, not from G2.
    # G2 = 30; G1 = 2 + .9*20 = 20; G0 = 1 + .9*20 = 19
    ("truncated_mid_segment", [1, 2, 3], [F, F, F], [F, T_, F], [10, 20, 30], 0.9, 1.0,
     [19.0, 20.0, 30.0]),
    # Truncation on the last step is just the segment-end bootstrap from v_next[-1].
    ("truncated_last_step", [1, 2, 3], [F, F, F], [F, F, T_], [10, 20, 30], 0.9, 1.0,
     [27.1, 29.0, 30.0]),
    # Two episode ends in one segment: terminated at t=0, truncated at t=2.
    # G3 = 1 + .5*8 = 5; G2 = 1 + .5*6 = 4; G1 = 1 + .5*4 = 3; G0 = 1
    ("two_episode_ends", [1, 1, 1, 1], [T_, F, F, F], [F, F, T_, F], [2, 4, 6, 8], 0.5, 1.0,
     [1.0, 3.0, 4.0, 5.0]),
    # gamma = 1: undiscounted sums to the segment end.
    ("undiscounted", [1, 2, 3], [F, F, F], [F, F, F], [0, 0, 5], 1.0, 1.0, [11.0, 10.0, 8.0]),
    # lambda = 0.5, no episode end:
    # G2 = 3 + .9*30 = 30; G1 = 2 + .9*(.5*20 + .5*30) = 24.5;
    # G0 = 1 + .9*(.5*10 + .5*24.5) = 16.525
    ("lambda_half", [1, 2, 3], [F, F, F], [F, F, F], [10, 20, 30], 0.9, 0.5,
     [16.525, 24.5, 30.0]),
    # lambda = 0.5 with a truncation at t=1 (lambda is cut to 0 there):
    # G2 = 30; G1 = 2 + .9*20 = 20; G0 = 1 + .9*(.5*10 + .5*20) = 14.5
    ("lambda_half_truncated", [1, 2, 3], [F, F, F], [F, T_, F], [10, 20, 30], 0.9, 0.5,
     [14.5, 20.0, 30.0]),
    # lambda = 0.5 with termination at t=1: G1 = 2; G0 = 1 + .9*(.5*10 + .5*2) = 6.4
    ("lambda_half_terminated", [1, 2, 3], [F, T_, F], [F, F, F], [10, 20, 30], 0.9, 0.5,
     [6.4, 2.0, 30.0]),
    # lambda = 0: one-step TD targets r + gamma (1 - term) v_next.
    ("lambda_zero", [1, 2, 3], [F, T_, F], [F, F, F], [10, 20, 30], 0.9, 0.0,
     [10.0, 2.0, 30.0]),
    # T = 1: a single bootstrapped step.
    ("single_step", [2], [F], [F], [4], 0.5, 1.0, [4.0]),
)


class NStepReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*HAND_CASES)
    def test_hand_computed(self, r, term, trunc, v_next, gamma, lambda_, expected):
        # gamma and lambda are traced under jit: one compile serves every case of a length.
        g = self.variant(nstep_returns)(*_arrays(r, term, trunc, v_next), gamma, lambda_)
        chex.assert_shape(g, (len(r),))
        chex.assert_type(g, jnp.float32)
        np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_does_not_read_across_episode_end(self):
        """Returns up to an episode end ignore everything after it in the segment."""
        fn = self.variant(functools.partial(nstep_returns, gamma=0.9, lambda_=0.8))
        rng = np.random.default_rng(1)
        r, v = rng.normal(size=6), rng.normal(size=6)
        r2, v2 = r.copy(), v.copy()
        r2[3:] += 100.0
        v2[3:] -= 100.0
        for term, trunc in (([F, F, T_, F, F, F], [F] * 6), ([F] * 6, [F, F, T_, F, F, F])):
            g = fn(*_arrays(r, term, trunc, v))
            g2 = fn(*_arrays(r2, term, trunc, v2))
            np.testing.assert_array_equal(g[:3], g2[:3])
            assert np.all(np.abs(np.asarray(g[3:]) - np.asarray(g2[3:])) > 1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_terminated_dominates_truncated(self):
        """If both flags are set (the env adapter never does this), no bootstrap happens."""
        fn = self.variant(functools.partial(nstep_returns, gamma=0.9))
        g = fn(*_arrays([1.0, 2.0], [F, T_], [F, T_], [50.0, 60.0]))
        np.testing.assert_allclose(g, [1.0 + 0.9 * 2.0, 2.0], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambda_one_ignores_intermediate_values(self):
        """With lambda = 1 and no truncation only v_next[-1] (and terminals) matter."""
        fn = self.variant(functools.partial(nstep_returns, gamma=0.95, lambda_=1.0))
        r = jnp.arange(5, dtype=jnp.float32)
        flags = jnp.zeros(5, bool)
        v_a = jnp.array([1.0, -2.0, 3.0, -4.0, 7.0])
        v_b = jnp.array([9.0, 9.0, 9.0, 9.0, 7.0])
        np.testing.assert_array_equal(fn(r, flags, flags, v_a), fn(r, flags, flags, v_b))
        v_c = v_a.at[-1].set(8.0)
        g_a, g_c = fn(r, flags, flags, v_a), fn(r, flags, flags, v_c)
        # Changing the bootstrap value shifts G_t by gamma^(T - t) * 1.
        np.testing.assert_allclose(g_c - g_a, 0.95 ** np.arange(5, 0, -1), rtol=1e-5)

    def test_rank_and_shape_assertions(self):
        r, term, trunc, v = _arrays([1, 2], [F, F], [F, F], [0, 0])
        with pytest.raises(AssertionError):
            nstep_returns(r[None], term[None], trunc[None], v[None], 0.9)
        with pytest.raises(AssertionError):
            nstep_returns(r, term, trunc, jnp.zeros(3), 0.9)


def _random_segment(rng, T, p_term=0.2, p_trunc=0.2, n=None):
    """Random segment(s): [T] arrays, or [n, T] when ``n`` is given."""
    shape = (T,) if n is None else (n, T)
    r = rng.normal(size=shape).astype(np.float32)
    v_next = rng.normal(size=shape).astype(np.float32)
    term = rng.random(shape) < p_term
    trunc = (rng.random(shape) < p_trunc) & ~term
    return r, term, trunc, v_next


def _rlax_inputs(r, term, trunc, v_next, gamma, lambda_):
    """rlax's form: discount_t = gamma (1 - terminated), lambda_t = 0 where the return is cut."""
    T = r.shape[-1]
    discount_t = (gamma * (1.0 - term)).astype(np.float32)
    cut = trunc | (np.arange(T) == T - 1)
    lambda_t = np.where(cut, 0.0, lambda_).astype(np.float32)
    return jnp.asarray(r), jnp.asarray(discount_t), jnp.asarray(v_next), jnp.asarray(lambda_t)


# Batched and jitted once per segment length; gamma and lambda are traced.
_ours_batched = jax.jit(jax.vmap(nstep_returns, in_axes=(0, 0, 0, 0, None, None)))
_rlax_lambda_batched = jax.jit(jax.vmap(rlax.lambda_returns))
NUM_SEGMENTS = 64


@pytest.mark.parametrize("T", [1, 5, 20])
def test_matches_rlax_lambda_returns(T):
    rng = np.random.default_rng(T)
    r, term, trunc, v_next = _random_segment(rng, T, n=NUM_SEGMENTS)
    assert term.any() and trunc.any() or T == 1
    for gamma in (0.99, 0.9):
        for lambda_ in (1.0, 0.95, 0.5, 0.0):
            ours = _ours_batched(jnp.asarray(r), jnp.asarray(term), jnp.asarray(trunc),
                                 jnp.asarray(v_next), gamma, lambda_)
            theirs = _rlax_lambda_batched(*_rlax_inputs(r, term, trunc, v_next, gamma, lambda_))
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5,
                                       err_msg=f"gamma={gamma} lambda={lambda_}")


@pytest.mark.parametrize("T", [1, 5, 12])
def test_matches_rlax_n_step_bootstrapped_returns(T):
    """lambda = 1 is the n-step return to the segment end (n = T), cut at truncations."""
    rng = np.random.default_rng(100 + T)
    r, term, trunc, v_next = _random_segment(rng, T, n=NUM_SEGMENTS)
    ours = _ours_batched(jnp.asarray(r), jnp.asarray(term), jnp.asarray(trunc),
                         jnp.asarray(v_next), 0.99, 1.0)
    r_, d_, v_, lam_t = _rlax_inputs(r, term, trunc, v_next, 0.99, 1.0)
    n_step = lambda r, d, v, lam: rlax.n_step_bootstrapped_returns(r, d, v, n=T, lambda_t=lam)
    theirs = jax.jit(jax.vmap(n_step))(r_, d_, v_, lam_t)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_matches_rlax_discounted_returns_without_truncation():
    """No truncation, lambda = 1: a discounted return bootstrapped from V at the segment end."""
    rng = np.random.default_rng(7)
    T = 16
    r, term, _, v_next = _random_segment(rng, T, p_trunc=0.0, n=NUM_SEGMENTS)
    no_trunc = np.zeros_like(term)
    ours = _ours_batched(jnp.asarray(r), jnp.asarray(term), jnp.asarray(no_trunc),
                         jnp.asarray(v_next), 0.97, 1.0)
    discount_t = jnp.asarray((0.97 * (1.0 - term)).astype(np.float32))
    theirs = jax.jit(jax.vmap(rlax.discounted_returns))(
        jnp.asarray(r), discount_t, jnp.asarray(v_next[:, -1]))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_matches_numpy_reference_loop():
    """An independent backward loop written from the paper's Algorithm S3."""
    rng = np.random.default_rng(11)
    gamma, T = 0.9, 8
    r, term, trunc, v_next = _random_segment(rng, T, p_term=0.3, p_trunc=0.3, n=NUM_SEGMENTS)
    expected = np.zeros((NUM_SEGMENTS, T))
    for n in range(NUM_SEGMENTS):
        R = 0.0
        for i in reversed(range(T)):
            if term[n, i]:
                R = 0.0
            elif trunc[n, i] or i == T - 1:
                R = v_next[n, i]
            R = r[n, i] + gamma * R
            expected[n, i] = R
    ours = _ours_batched(jnp.asarray(r), jnp.asarray(term), jnp.asarray(trunc),
                         jnp.asarray(v_next), gamma, 1.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


class NStepQReturnsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        fn = self.variant(functools.partial(nstep_q_returns, gamma=0.5))
        r = jnp.array([0.0, 1.0])
        q_next = jnp.array([[1.0, 5.0], [3.0, 2.0]])
        none = jnp.zeros(2, bool)
        # Bootstrap from max_a Q at the end: G1 = 1 + .5*3 = 2.5; G0 = .5*2.5 = 1.25
        np.testing.assert_allclose(fn(r, none, none, q_next), [1.25, 2.5], rtol=1e-6)
        # Truncated at t=0: G0 = 0 + .5*max(1, 5) = 2.5
        trunc0 = jnp.array([True, False])
        np.testing.assert_allclose(fn(r, none, trunc0, q_next), [2.5, 2.5], rtol=1e-6)
        # Terminated at t=1: G1 = 1; G0 = .5
        term1 = jnp.array([False, True])
        np.testing.assert_allclose(fn(r, term1, none, q_next), [0.5, 1.0], rtol=1e-6)

    def test_matches_rlax_q_lambda_with_max(self):
        rng = np.random.default_rng(3)
        r, term, trunc, _ = _random_segment(rng, 6, n=NUM_SEGMENTS)
        q_next = rng.normal(size=(NUM_SEGMENTS, 6, 4)).astype(np.float32)
        ours = jax.jit(jax.vmap(nstep_q_returns, in_axes=(0, 0, 0, 0, None)))(
            jnp.asarray(r), jnp.asarray(term), jnp.asarray(trunc), jnp.asarray(q_next), 0.99)
        v_max = q_next.max(-1)
        theirs = _rlax_lambda_batched(*_rlax_inputs(r, term, trunc, v_max, 0.99, 1.0))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)

    def test_rank_assertion(self):
        with pytest.raises(AssertionError):
            nstep_q_returns(jnp.zeros(2), jnp.zeros(2, bool), jnp.zeros(2, bool),
                            jnp.zeros(2), 0.9)


class OneStepTargetsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_hand_computed(self):
        fn = self.variant(functools.partial(one_step_targets, gamma=0.5))
        y = fn(jnp.array([1.0, 2.0, -1.0]), jnp.array([False, True, False]),
               jnp.array([3.0, 4.0, 2.0]))
        np.testing.assert_allclose(y, [2.5, 2.0, 0.0], rtol=1e-6)

    def test_equals_lambda_zero_returns(self):
        rng = np.random.default_rng(5)
        r, term, trunc, v_next = _random_segment(rng, 10)
        y = one_step_targets(jnp.asarray(r), jnp.asarray(term), jnp.asarray(v_next), 0.9)
        g0 = nstep_returns(jnp.asarray(r), jnp.asarray(term), jnp.asarray(trunc),
                           jnp.asarray(v_next), 0.9, 0.0)
        np.testing.assert_allclose(y, g0, rtol=1e-6, atol=1e-6)
        # And the one-step TD target of rlax (a lambda return with lambda = 0).
        d = jnp.asarray((0.9 * (1.0 - term)).astype(np.float32))
        np.testing.assert_allclose(
            y, rlax.lambda_returns(jnp.asarray(r), d, jnp.asarray(v_next), 0.0),
            rtol=1e-6, atol=1e-6)

    def test_shape_assertion(self):
        with pytest.raises(AssertionError):
            one_step_targets(jnp.zeros(2), jnp.zeros(3, bool), jnp.zeros(2), 0.9)
