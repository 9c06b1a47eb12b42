"""Synchronous A2C: determinism, seeds under vmap, no retracing, and a learning test."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import curves
from a3c_jax.config.schema import Config
from a3c_jax.drivers.synchronous import make_train

SMALL = Config(total_steps=120, num_envs=4, t_max=5, hidden=(16, 16), seeds=(0, 1))
NUM_UPDATES = 6  # 120 // (4 * 5)


@pytest.fixture(scope="module")
def small():
    """The trainer, and a single-seed driver that runs the budget in two jitted chunks of
    ``run_chunk`` (the way the runner drives it), guarded against retracing."""
    trainer = make_train(SMALL)
    assert trainer.num_updates == NUM_UPDATES
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def chunk(state):
        return trainer.run_chunk(state, NUM_UPDATES // 2)

    init = jax.jit(trainer.init)

    def train_one(seed):
        state, m_a = chunk(init(jax.random.key(seed)))
        state, m_b = chunk(state)   # the output state must feed back without a retrace
        return state, jax.tree.map(lambda a, b: np.concatenate([a, b]), m_a, m_b)

    return trainer, chunk, train_one, init


def test_same_seed_gives_identical_params(small):
    _, _, train_one, init = small
    s1, m1 = train_one(0)
    s2, m2 = train_one(0)
    chex.assert_trees_all_equal(s1.params, s2.params)
    chex.assert_trees_all_equal(m1, m2)
    s3, _ = train_one(1)
    assert not np.allclose(s1.params["params"]["Dense_0"]["kernel"],
                           s3.params["params"]["Dense_0"]["kernel"])
    # Training moved the parameters away from their initial values.
    start = init(jax.random.key(0)).params
    assert not np.allclose(start["params"]["Dense_1"]["kernel"],
                           s1.params["params"]["Dense_1"]["kernel"])


def test_metrics_per_update(small):
    _, _, train_one, _ = small
    state, m = train_one(0)
    assert int(state.update) == NUM_UPDATES
    for field in m:
        chex.assert_shape(field, (NUM_UPDATES,))
    np.testing.assert_array_equal(m.env_steps, 20 * np.arange(1, NUM_UPDATES + 1))
    episodes = np.asarray(m.episodes)
    assert (episodes >= 0).all()
    np.testing.assert_array_equal(np.isnan(m.episode_return), episodes == 0)
    assert np.isfinite(m.total_loss).all()
    # Near-uniform 2-action policy: the entropy, a mean over the batch's steps (combine
    # "step-mean", the default), is close to ln 2.
    np.testing.assert_allclose(m.entropy[0], np.log(2), rtol=1e-3)


def test_vmapped_seeds_equal_individually_trained_seeds(small):
    """Seeds trained together under vmap (the runner's path: vmap over run_chunk; train_seeds
    is the same vmap over the whole budget and is exercised by the learning test) match each
    seed trained on its own."""
    trainer, _, train_one, init = small
    seeds = (0, 1)
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *[init(jax.random.key(s)) for s in seeds])
    chunk_v = jax.jit(jax.vmap(lambda s: trainer.run_chunk(s, NUM_UPDATES // 2)))
    states, m_a = chunk_v(states)
    states, m_b = chunk_v(states)
    metrics = jax.tree.map(lambda a, b: np.concatenate([a, b], axis=1), m_a, m_b)
    chex.assert_shape(metrics.env_steps, (len(seeds), NUM_UPDATES))
    for i, seed in enumerate(seeds):
        state, m = train_one(seed)
        one = jax.tree.map(lambda x: x[i], (states.params, metrics))
        chex.assert_trees_all_close(one, (state.params, m), rtol=1e-4, atol=1e-5)


def test_run_chunk_does_not_retrace(small):
    _, chunk, train_one, init = small
    for seed in (0, 1, 2):
        train_one(seed)   # each call runs two chunks; assert_max_traces(n=1) holds throughout
    # The guard is live: a state with a different signature would retrace and trip it.
    state = init(jax.random.key(0))
    with pytest.raises(AssertionError):
        chunk(state.replace(update=state.update.astype(jnp.float32)))


def test_rejects_asynchronous_algo():
    """The synchronous driver refuses a config that names an asynchronous run (a3c on worker
    threads) instead of silently training it synchronously; a3c with backend "sync" is A2C."""
    with pytest.raises(ValueError, match="algo|backend"):
        make_train(Config(algo="a3c"))
    assert make_train(Config(algo="a3c", backend="sync")).config.is_sync


@pytest.mark.learning
def test_a2c_learns_cartpole():
    """Sync A2C with the default Config on CartPole-v1, seeds 0, 1, 2 in one vmapped call:
    every seed's smoothed return (10k-step window) reaches 475 within 500k env steps."""
    seeds = (0, 1, 2)
    trainer = make_train(Config(total_steps=500_000, seeds=seeds))
    cfg = trainer.config   # resolved: the lr printed is the one trained with
    print(f"\nA2C CartPole-v1: lr {cfg.lr} (anneal {cfg.lr_anneal}), clip {cfg.max_grad_norm}, "
          f"{cfg.num_envs} envs, t_max {cfg.t_max}, combine {cfg.combine}")
    _, metrics = trainer.train_seeds(seeds)
    metrics = jax.device_get(metrics)
    reached = {}
    for i, seed in enumerate(seeds):
        steps = np.asarray(metrics.env_steps[i])
        smoothed = curves.smoothed_returns(steps, metrics.episode_return[i],
                                           metrics.episodes[i], window_steps=10_000)
        reached[seed] = curves.steps_to_threshold(steps, smoothed, 475.0)
        print(f"seed {seed}: smoothed return first >= 475 at {reached[seed]:.0f} env steps "
              f"(best {np.nanmax(smoothed):.1f})")
    for seed, step in reached.items():
        assert np.isfinite(step) and step <= 500_000, f"seed {seed} never reached 475"
