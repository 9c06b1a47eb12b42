"""The gymnax adapter: names, shapes, and termination kept apart from truncation."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core.envs import Env, check_env_name, make_env, valid_env_names


def test_unknown_env_name_lists_valid_ids():
    with pytest.raises(ValueError) as err:
        Env("NoSuchEnv-v9", 2)
    msg = str(err.value)
    assert "NoSuchEnv-v9" in msg
    for valid in ("CartPole-v1", "Acrobot-v1", "Breakout-MinAtar"):
        assert valid in msg
    with pytest.raises(ValueError, match="CartPole-v1"):
        check_env_name("cartpole")
    check_env_name("CartPole-v1")  # no error
    assert "CartPole-v1" in valid_env_names()


def test_non_positive_num_envs_rejected():
    with pytest.raises(ValueError, match="num_envs"):
        Env("CartPole-v1", 0)


@pytest.mark.parametrize("name,obs_shape,num_actions", [
    ("CartPole-v1", (4,), 2),
    ("Acrobot-v1", (6,), 3),
    ("Breakout-MinAtar", (10, 10, 4), 3),
])
def test_batched_reset_and_step_shapes(name, obs_shape, num_actions):
    B = 3
    env = make_env(name, B)
    assert env.discrete
    assert env.obs_shape == obs_shape
    assert env.num_actions == num_actions == env.action_dim
    state = env.reset(jax.random.key(0))
    assert state.obs.shape == (B,) + obs_shape
    assert state.obs.dtype == jnp.float32
    np.testing.assert_array_equal(state.episode_return, np.zeros(B))
    np.testing.assert_array_equal(state.episode_length, np.zeros(B))
    # Different envs of the batch get different keys.
    if name != "Breakout-MinAtar":  # MinAtar Breakout can start identically
        assert not np.allclose(state.obs[0], state.obs[1])
    # Step shapes by abstract evaluation (compiling MinAtar's step costs seconds); the values
    # of a real step are checked on CartPole below.
    action = jnp.arange(B, dtype=jnp.int32) % num_actions
    new_state, out = jax.eval_shape(env.step, jax.random.key(1), state, action)
    assert out.obs.shape == out.final_obs.shape == new_state.obs.shape == (B,) + obs_shape
    for field in ("reward", "terminated", "truncated", "completed_return", "completed_length"):
        assert getattr(out, field).shape == (B,), field
    assert out.obs.dtype == out.final_obs.dtype == out.reward.dtype == jnp.float32
    assert out.terminated.dtype == out.truncated.dtype == jnp.bool_
    assert new_state.episode_return.shape == new_state.episode_length.shape == (B,)
    # The state's signature is stable across a step, so a scan can carry it.
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


def _run(env: Env, key, num_steps: int, action_fn):
    """Step the batch ``num_steps`` times (a Python loop over one jitted step: compiling a scan
    over gymnax's step costs several times more). Returns, stacked over time, the obs before
    each step, the StepOut, and the running episode return and length after it."""
    step = jax.jit(env.step)
    state = env.reset(key)
    trace = []
    for t, k in enumerate(jax.random.split(key, num_steps)):
        new_state, out = step(k, state, action_fn(t, env.num_envs))
        trace.append((state.obs, out, new_state.episode_return, new_state.episode_length))
        state = new_state
    return jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(trace))


LIMIT, NUM_ALTERNATING, NUM_PUSHING = 9, 8, 56


def _policy(t, n):
    """The first NUM_ALTERNATING envs alternate left/right pushes (the pole cannot fall within
    LIMIT steps); the others always push right, which drops the pole after 8 to 11 steps, most
    often 9 or 10 -- so a time limit of 9 makes falls at the limit and truncations both common."""
    alternate = jnp.full((NUM_ALTERNATING,), t % 2, jnp.int32)
    return jnp.concatenate([alternate, jnp.ones((n - NUM_ALTERNATING,), jnp.int32)])


@pytest.fixture(scope="module")
def limited_cartpole():
    """CartPole-v1 with its time limit forced down to LIMIT steps, stepped 2 * LIMIT + 2 times."""
    env = Env("CartPole-v1", NUM_ALTERNATING + NUM_PUSHING)
    env.params = env.params.replace(max_steps_in_episode=LIMIT)
    return env, _run(env, jax.random.key(0), 2 * LIMIT + 2, _policy)


def test_forced_truncation_on_cartpole(limited_cartpole):
    env, (prev_obs, out, ep_ret, ep_len) = limited_cartpole
    tau = float(env.params.tau)
    sel = slice(0, NUM_ALTERNATING)
    prev_obs, ep_ret, ep_len = prev_obs[:, sel], ep_ret[:, sel], ep_len[:, sel]
    out = jax.tree.map(lambda x: x[:, sel], out)
    last = LIMIT - 1          # index of the step that hits the time limit
    # Alternating pushes never drop the pole: every episode is cut by the time limit.
    assert not out.terminated.any()
    np.testing.assert_array_equal(out.reward, 1.0)
    np.testing.assert_array_equal(out.truncated.any(1), np.arange(len(out.reward)) % LIMIT == last)
    assert out.truncated[last].all()
    # Running statistics count the episode in progress.
    np.testing.assert_array_equal(ep_ret[:last], np.arange(1, LIMIT)[:, None] * np.ones((1, 8)))
    np.testing.assert_array_equal(ep_len[:last], np.arange(1, LIMIT)[:, None] * np.ones((1, 8)))
    # Not done: final_obs is the next obs and nothing is reported as completed.
    np.testing.assert_array_equal(out.final_obs[:last], out.obs[:last])
    np.testing.assert_array_equal(out.completed_return[:last], 0.0)
    np.testing.assert_array_equal(out.completed_length[:last], 0)
    # At the time limit: the episode's return and length are reported ...
    np.testing.assert_array_equal(out.completed_return[last], float(LIMIT))
    np.testing.assert_array_equal(out.completed_length[last], LIMIT)
    # ... the running statistics restart ...
    np.testing.assert_array_equal(ep_ret[last], 0.0)
    np.testing.assert_array_equal(ep_len[last], 0)
    np.testing.assert_array_equal(ep_ret[last + 1], 1.0)
    # ... obs is the reset observation, and the next step starts from it ...
    assert np.all(np.abs(out.final_obs[last] - out.obs[last]).max(-1) > 1e-3)
    np.testing.assert_array_equal(prev_obs[last + 1], out.obs[last])
    assert np.abs(out.obs[last]).max() <= 0.05   # a fresh CartPole start
    # ... while final_obs continues the physics: x' = x + tau * x_dot (Euler step of CartPole).
    np.testing.assert_allclose(out.final_obs[last, :, 0],
                               prev_obs[last, :, 0] + tau * prev_obs[last, :, 1],
                               rtol=1e-5, atol=1e-6)


def test_terminated_never_co_occurs_with_truncated(limited_cartpole):
    """A pole that falls exactly at the time limit is terminated, not truncated."""
    _, (_, out, _, _) = limited_cartpole
    assert not (out.terminated & out.truncated).any()
    at_limit = out.completed_length == LIMIT
    # Both cases occur among the pushing envs, so the exclusion above was exercised: falls at
    # the limit are terminated, the others that reach the limit are truncated.
    pushing = np.arange(out.reward.shape[1]) >= NUM_ALTERNATING
    assert (out.terminated & at_limit & pushing).sum() > 5
    assert (out.truncated & at_limit & pushing).sum() > 5
    assert not (out.truncated & ~at_limit).any()
    assert (out.completed_length <= LIMIT).all()
    done = out.terminated | out.truncated
    np.testing.assert_array_equal(out.completed_length > 0, done)
    np.testing.assert_array_equal(out.final_obs[~done], out.obs[~done])
