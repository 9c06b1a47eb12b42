"""Epsilon-greedy acting, the linear epsilon schedule and the paper's final-epsilon draw."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.core import exploration
from a3c_jax.drivers import synchronous as sync
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.worker import AsyncWorker


@pytest.mark.parametrize("eps_final", [0.1, 0.01, 0.5])
def test_schedule_start_middle_end(eps_final):
    anneal = 1000
    at = lambda s: float(exploration.epsilon_at(s, eps_final, anneal))  # noqa: E731
    assert at(0) == pytest.approx(1.0)
    assert at(250) == pytest.approx(1.0 - 0.25 * (1.0 - eps_final), abs=1e-6)
    assert at(500) == pytest.approx((1.0 + eps_final) / 2, abs=1e-6)
    assert at(1000) == pytest.approx(eps_final, abs=1e-6)
    assert at(10_000) == pytest.approx(eps_final, abs=1e-6)   # held after annealing
    # the same schedule in float32 under jit, as the actors compute it from their step count
    jitted = jax.jit(lambda s: exploration.epsilon_at(s, eps_final, anneal))
    for s in (0, 250, 500, 1000, 10_000):
        out = jitted(jnp.asarray(s, jnp.int32))
        assert out.dtype == jnp.float32
        assert float(out) == pytest.approx(at(s), abs=1e-6)


def test_schedule_is_traceable_and_vectorised():
    f = jax.jit(lambda s, e: exploration.epsilon_at(s, e, 100))
    out = f(jnp.asarray(50), jnp.asarray([0.1, 0.5]))
    np.testing.assert_allclose(out, [0.55, 0.75], atol=1e-6)


def test_schedule_rejects_nonpositive_anneal():
    with pytest.raises(ValueError, match="anneal_steps"):
        exploration.epsilon_at(0, 0.1, 0)


def test_final_epsilon_frequencies():
    draws = np.asarray(exploration.sample_final_epsilon(jax.random.key(0), (200_000,)))
    assert {round(float(x), 4) for x in np.unique(draws)} == {0.01, 0.1, 0.5}
    for value, p in zip(exploration.FINAL_EPSILONS, exploration.FINAL_EPSILON_PROBS):
        freq = np.mean(np.isclose(draws, value))
        # 4.5 standard errors of a binomial proportion at n = 200k is < 0.005
        assert abs(freq - p) < 0.005, (value, freq, p)


def test_final_epsilon_fixed_by_config():
    c = Config(algo="q1", eps_final=0.05)
    out = exploration.final_epsilon(c, jax.random.key(3), (4,))
    np.testing.assert_allclose(out, [0.05] * 4)
    sampled = exploration.final_epsilon(Config(algo="q1"), jax.random.key(3), (1000,))
    assert {round(float(x), 4) for x in np.unique(np.asarray(sampled))} <= {0.01, 0.1, 0.5}


def _final_eps(worker: AsyncWorker, seed: int, w: int) -> np.ndarray:
    return np.asarray(worker.init_actor(seed, w)[0].eps_final)


def test_final_epsilon_differs_across_workers():
    algo = AsyncWorker.from_config(Config(algo="q1", total_steps=1000, workers=8,
                                          envs_per_worker=3))
    eps = np.stack([_final_eps(algo, 0, w) for w in range(8)])
    chex.assert_shape(eps, (8, 3))                 # one per environment of each worker
    assert len(np.unique(eps)) > 1                 # not one draw for all
    np.testing.assert_array_equal(eps, np.stack([_final_eps(algo, 0, w) for w in range(8)]))


def test_actor_epsilon_anneals_with_its_own_steps():
    """A value-method actor starts at epsilon 1, and its policy's epsilon follows
    ``epsilon_at(actor.steps, eps_final, eps_anneal_steps)``; each unroll adds t_max steps."""
    from a3c_jax.config.defaults import resolve

    c = resolve(Config(algo="q1", t_max=5, eps_anneal_steps=10, hidden=(8,)))
    algo = algorithm.make_algorithm(c, 2)
    params = algo.init_params(jax.random.key(0))
    actor = algo.init_actor(jax.random.key(1), eps_final=jnp.asarray([0.0, 0.0]))
    assert int(actor.steps) == 0
    obs = jax.random.normal(jax.random.key(4), (2, 4))
    greedy = np.argmax(np.asarray(algo.apply_fn(params, obs)), -1)
    start = [np.asarray(algo.policy(actor)(params, None, obs, jax.random.key(k))[1])
             for k in range(20)]
    assert any((a != greedy).any() for a in start)          # epsilon 1 at step 0
    actor, _ = algo.unroll(params, actor, jax.random.key(2))
    assert int(actor.steps) == 5
    actor, _ = algo.unroll(params, actor, jax.random.key(3))
    assert int(actor.steps) == 10
    # annealed to eps_final = 0: the policy is greedy now
    policy = algo.policy(actor)
    for k in range(20):   # one observation per environment, as in the unroll
        obs = jax.random.normal(jax.random.key(100 + k), (2, 4))
        _, act = policy(params, None, obs, jax.random.key(k))
        np.testing.assert_array_equal(act, np.argmax(np.asarray(algo.apply_fn(params, obs)),
                                                     -1))
    with pytest.raises(ValueError, match="final epsilons"):
        algo.init_actor(jax.random.key(1))


Q = jnp.asarray([[0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])   # greedy actions 1 and 0


def test_greedy_when_epsilon_zero():
    for k in range(20):
        a = exploration.epsilon_greedy_action(Q, 0.0, jax.random.key(k))
        np.testing.assert_array_equal(a, [1, 0])
        chex.assert_type(a, jnp.int32)


@pytest.mark.parametrize("eps", [1.0, 0.5])
def test_action_frequencies(eps):
    n = 40_000
    keys = jax.random.split(jax.random.key(1), n)
    acts = np.asarray(jax.vmap(lambda k: exploration.epsilon_greedy_action(Q, eps, k))(keys))
    A = Q.shape[-1]
    for row, greedy in enumerate([1, 0]):
        freq = np.bincount(acts[:, row], minlength=A) / n
        expected = np.full(A, eps / A)
        expected[greedy] += 1 - eps
        np.testing.assert_allclose(freq, expected, atol=0.015)


def test_per_env_epsilon_broadcasts():
    eps = jnp.asarray([0.0, 1.0])
    n = 4000
    keys = jax.random.split(jax.random.key(2), n)
    acts = np.asarray(jax.vmap(lambda k: exploration.epsilon_greedy_action(Q, eps, k))(keys))
    assert np.all(acts[:, 0] == 1)                  # env 0 is greedy
    assert abs(np.mean(acts[:, 1] == 0) - 1 / 3) < 0.03  # env 1 is uniform


def test_policy_wraps_apply_fn():
    policy = exploration.epsilon_greedy(lambda p, obs: obs @ p, 0.0)
    w = jnp.eye(3)
    obs = jnp.asarray([[0.0, 0.0, 1.0], [0.0, 3.0, 1.0]])
    carry, action = policy(w, None, obs, jax.random.key(0))   # the carry passes through
    assert carry is None
    np.testing.assert_array_equal(action, [2, 1])


def test_async_and_sync_draw_the_same_epsilons():
    """Async W x E and sync W*E envs with the same seed explore with the same final epsilons."""
    c = Config(algo="nq", workers=2, envs_per_worker=3, num_envs=6, total_steps=1000)
    algo = AsyncWorker.from_config(c)
    trainer = sync.make_train(c.replace(backend="sync"))
    for seed in (0, 1):
        async_eps = np.concatenate([_final_eps(algo, seed, w) for w in range(2)])
        sync_eps = np.asarray(trainer.init(jax.random.key(seed)).actor.eps_final)
        np.testing.assert_array_equal(async_eps, sync_eps)


@pytest.mark.parametrize("num_envs", [2, 16])
def test_epsilon_anneals_over_the_run_s_env_steps(num_envs):
    """``eps_anneal_steps`` counts the run's env steps (T), whatever the number of
    environments: on the sync driver with N envs, epsilon reaches its final value after
    eps_anneal_steps / N steps of each environment."""
    from a3c_jax.config.defaults import resolve

    c = resolve(Config(algo="nq", backend="sync", num_envs=num_envs, t_max=5,
                       eps_anneal_steps=160, hidden=(8,)))
    algo = algorithm.make_algorithm(c, num_envs)
    assert algo.num_actors == num_envs
    actor = algo.init_actor(jax.random.key(1), eps_final=jnp.zeros((num_envs,)))
    half = actor._replace(steps=jnp.asarray(80 // num_envs, jnp.int32))
    np.testing.assert_allclose(algo.epsilon(half), np.full(num_envs, 0.5))
    done = actor._replace(steps=jnp.asarray(160 // num_envs, jnp.int32))
    np.testing.assert_allclose(algo.epsilon(done), np.zeros(num_envs))
    # the async workers of a W x E run count W * E environments
    a = resolve(Config(algo="nq", workers=4, envs_per_worker=2, eps_anneal_steps=160))
    assert algorithm.make_algorithm(a, 2).num_actors == 8
