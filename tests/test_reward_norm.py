"""Return-based reward normalisation (``--reward-norm``): hand-computed returns and scale,
episode ends, masks, invariance to the reward's units, and the state kept by the actor."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import reward_norm
from a3c_jax.config.schema import Config
from a3c_jax.core.normalization import INIT_COUNT
from a3c_jax.drivers.synchronous import make_train


def _np_expected(rets, prior=(INIT_COUNT, 0.0, 1.0)):
    """The merged variance of ``rets`` with the prior (count, mean, var), by hand."""
    c0, m0, v0 = prior
    n, m, v = len(rets), np.mean(rets), np.var(rets)
    total = c0 + n
    delta = m - m0
    return (v0 * c0 + v * n + delta ** 2 * c0 * n / total) / total


def _run(r, done, gamma, mask=None, state=None):
    r = jnp.asarray(r, jnp.float32)
    state = reward_norm.init(r.shape[1]) if state is None else state
    return reward_norm.normalize(state, r, jnp.asarray(done), gamma,
                                 None if mask is None else jnp.asarray(mask))


def test_hand_computed_returns_and_scale():
    """r = (1, 1, 1), gamma 0.5, no episode end: R = 1, 1.5, 1.75; r' = r / std(R)."""
    st, out = _run([[1.0], [1.0], [1.0]], np.zeros((3, 1), bool), 0.5)
    var = _np_expected(np.array([1.0, 1.5, 1.75]))
    assert float(st.var) == pytest.approx(var, rel=1e-5)
    assert float(st.count) == pytest.approx(3 + INIT_COUNT)
    np.testing.assert_allclose(out, np.full((3, 1), 1 / np.sqrt(var + reward_norm.EPS)),
                               rtol=1e-5)
    assert float(st.ret[0]) == pytest.approx(1.75)        # carried into the next segment


def test_episode_end_restarts_the_return_and_mask_skips_steps():
    # done at t = 0: R = 1, then 1, 1.5; env 1's last step is outside its segment
    done = np.array([[True, False], [False, False], [False, False]])
    mask = np.array([[True, True], [True, True], [True, False]])
    st, out = _run([[1.0, 2.0], [1.0, 2.0], [1.0, 99.0]], done, 0.5, mask)
    rets = np.array([1.0, 1.0, 1.5, 2.0, 3.0])             # env 0: 1, 1, 1.5; env 1: 2, 3
    assert float(st.var) == pytest.approx(_np_expected(rets), rel=1e-5)
    assert float(st.count) == pytest.approx(5 + INIT_COUNT)
    np.testing.assert_allclose(st.ret, [1.5, 3.0])
    # the skipped reward is scaled (finite) but contributed nothing
    assert np.isfinite(np.asarray(out)).all()


def test_the_normalised_rewards_do_not_depend_on_the_reward_units():
    """Rewards x 100: after a few segments the normalised rewards are the same (the prior's
    weight, 1e-4 samples, is all that differs); clipping bounds them."""
    rng = np.random.default_rng(0)
    r = rng.normal(1.0, 0.5, size=(6, 5, 4)).astype(np.float32)   # 6 segments of [5, 4]
    done = rng.random((6, 5, 4)) < 0.1
    outs = {}
    for units in (1.0, 100.0):
        st = None
        for k in range(6):
            st, out = _run(r[k] * units, done[k], 0.99, state=st)
        outs[units] = np.asarray(out)
    np.testing.assert_allclose(outs[100.0], outs[1.0], rtol=1e-3)
    st, out = _run(np.full((3, 1), 1e6), np.zeros((3, 1), bool), 0.99,
                   state=reward_norm.init(1)._replace(count=jnp.float32(1e9)))
    assert float(jnp.max(out)) == reward_norm.CLIP


def test_the_actor_keeps_the_statistics_across_updates():
    """The sync driver threads the state through its updates (one per actor); the loss sees
    normalised rewards; fixed and until-terminal segments both run."""
    for segments in ("fixed", "until-terminal"):
        tr = make_train(Config(num_envs=4, total_steps=400, hidden=(8,), reward_norm=True,
                               segments=segments))
        state = tr.init(jax.random.key(0))
        assert state.actor.ret_norm.ret.shape == (4,)
        upd = jax.jit(tr.update)
        s1, _ = upd(state)
        s2, _ = upd(s1)
        assert float(s2.actor.ret_norm.count) > float(s1.actor.ret_norm.count) > 1
        assert float(s2.actor.ret_norm.count) == pytest.approx(
            int(s2.env_steps) + float(state.actor.ret_norm.count), rel=1e-6)
        _, traj = jax.jit(tr.algo.unroll)(s2.params, s2.actor, jax.random.key(5))
        _, normed = tr.algo.normalize_rewards(s2.actor, traj)
        assert not np.allclose(normed.reward, traj.reward)
