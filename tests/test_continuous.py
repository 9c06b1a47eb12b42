"""Continuous control: action bounds and clipping, per-action-space defaults, observation
normalisation (kept with the parameters), reward scaling, advantage normalisation, GAE, both
drivers on Pendulum-v1 and MountainCarContinuous-v0, and the Pendulum learning test."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import distributions, losses, networks, normalization, rollout
from a3c_jax.core import curves
from a3c_jax.shell import files as runlog, runner
from a3c_jax.config.schema import AUTO_FIELDS, Config, Resolved
from a3c_jax.config.defaults import AUTO_DEFAULTS, resolve
from a3c_jax.core.envs import Env, is_discrete
from a3c_jax.core.returns import nstep_returns


@pytest.mark.parametrize("name,obs_dim,high", [("Pendulum-v1", 3, 2.0),
                                               ("MountainCarContinuous-v0", 2, 1.0)])
def test_env_exposes_a_continuous_box(name, obs_dim, high):
    env = Env(name, 2)
    assert not env.discrete and not is_discrete(name)
    assert env.action_shape == (1,) and env.action_dim == 1 and env.num_actions == 0
    assert env.obs_shape == (obs_dim,)
    np.testing.assert_array_equal(env.action_low, [-high])
    np.testing.assert_array_equal(env.action_high, [high])
    assert is_discrete("CartPole-v1") and is_discrete("CartPole-masked-v1")


def test_sampled_actions_lie_in_the_box_after_clipping():
    env = Env("Pendulum-v1", 512)
    wide = distributions.DiagGaussian(jnp.zeros((512, 1)), jnp.full((512, 1), 25.0))
    a = wide.sample(jax.random.key(0))
    assert float(jnp.abs(a).max()) > 2.0            # the samples do leave the box ...
    clipped = env.clip_action(a)
    assert float(clipped.min()) >= -2.0 and float(clipped.max()) <= 2.0   # ... clipping bounds them
    np.testing.assert_array_equal(clipped, np.clip(np.asarray(a), -2.0, 2.0))
    # Stepping with the raw sample is stepping with the clipped one.
    state = env.reset(jax.random.key(1))
    step = jax.jit(env.step)
    _, out_raw = step(jax.random.key(2), state, a)
    _, out_clip = step(jax.random.key(2), state, clipped)
    chex.assert_trees_all_equal(out_raw, out_clip)


def test_trajectory_keeps_the_unclipped_sample_and_the_loss_scores_it():
    """The log-probability in the loss is of the action as sampled, not as clipped."""
    env = Env("MountainCarContinuous-v0", 8)
    net = networks.ActorCritic(action_dim=1, discrete=False, hidden=(8,))
    params = networks.init_params(net, jax.random.key(0), env.obs_shape)
    policy = rollout.sampling_policy(net.apply)
    _, traj = jax.jit(lambda s, k: rollout.unroll(env, policy, params, s, k, 20))(
        rollout.ActorState(env.reset(jax.random.key(1))), jax.random.key(2))
    assert traj.action.shape == (20, 8, 1) and traj.action.dtype == jnp.float32
    assert float(jnp.abs(traj.action).max()) > 1.0          # stored unclipped
    cfg = losses.LossConfig(0.99, 1.0, 0.5, 1e-4, "sum")
    loss = lambda t: losses.actor_critic_segment_loss(params, net.apply, t, cfg)[0]  # noqa
    clipped = traj._replace(action=jnp.clip(traj.action, -1.0, 1.0))
    assert not np.isclose(float(loss(traj)), float(loss(clipped)))


# --- per-action-space defaults --------------------------------------------------------------

def test_resolve_per_action_space():
    assert set(AUTO_FIELDS) == set(AUTO_DEFAULTS["continuous"])
    for name in AUTO_FIELDS:
        assert getattr(Config(), name) is None, name
    disc = resolve(Config())
    cont = resolve(Config(env="Pendulum-v1"))
    assert isinstance(disc, Resolved) and isinstance(cont, Resolved)
    for name in AUTO_FIELDS:
        assert getattr(disc, name) == AUTO_DEFAULTS["discrete"][name]
        assert getattr(cont, name) == AUTO_DEFAULTS["continuous"][name]
    # The paper's values: beta 0.01 (Atari), 1e-4 (continuous); observations not normalised
    # for either (their running statistics drift, docs/results.md); rewards normalised by the
    # return's scale for both (ours).
    assert disc.entropy_coef == 0.01 and cont.entropy_coef == 1e-4
    assert disc.obs_norm is False and cont.obs_norm is False
    assert disc.reward_scale == 1.0 and disc.adv_norm is False
    assert disc.reward_norm is True and cont.reward_norm is True and cont.reward_scale == 1.0
    assert resolve(Config(algo="a3c")).lr == AUTO_DEFAULTS["discrete_async"]["lr"] != disc.lr
    cont_async = resolve(Config(algo="a3c", env="Pendulum-v1"))
    for name in AUTO_FIELDS:
        assert getattr(cont_async, name) == AUTO_DEFAULTS["continuous_async"][name]
    assert cont_async.lr < cont.lr and cont_async.entropy_coef == cont.entropy_coef
    # Explicit values are kept (even one equal to the other action space's default) ...
    mine = resolve(Config(env="Pendulum-v1", entropy_coef=0.01, obs_norm=True))
    assert mine.entropy_coef == 0.01 and mine.obs_norm is True
    # ... resolving is idempotent, and an env object gives the same answer as the name.
    assert resolve(cont) is cont
    assert resolve(Config(env="Pendulum-v1"), Env("Pendulum-v1", 1)) == cont
    Config(env="Pendulum-v1").validate()   # unresolved configs validate
    with pytest.raises(ValueError, match="reward_scale"):
        Config(reward_scale=0.0).validate()
    with pytest.raises(ValueError, match="recurrent"):
        Config(algo="nq", recurrent=True).validate()


def _train_cli():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "train.py"
    spec = importlib.util.spec_from_file_location("train_cli", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_writes_the_resolved_config(tmp_path):
    out = tmp_path / "pend"
    rc = _train_cli().main(["--algo", "a2c", "--env", "Pendulum-v1", "--total-steps", "800",
                            "--num-envs", "4", "--seeds", "0", "--out", str(out),
                            "--no-progress"])
    assert rc == 0
    data = json.loads((out / "config.json").read_text())
    for name in AUTO_FIELDS:
        assert data[name] == AUTO_DEFAULTS["continuous"][name], name
    assert isinstance(runlog.read_config(out), Resolved)


# --- observation normalisation --------------------------------------------------------------

def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 5, 3)).astype(np.float32) for n in (1, 4, 7)]
    stats = normalization.init_stats((3,))
    for b in batches:
        stats = normalization.update_stats(stats, jnp.asarray(b))
    allx = np.concatenate([b.reshape(-1, 3) for b in batches]).astype(np.float64)
    # the prior (mean 0, var 1) weighs INIT_COUNT samples
    w = normalization.INIT_COUNT
    n = allx.shape[0]
    mean = allx.sum(0) / (n + w)
    var = (w * (1 + mean ** 2) + np.square(allx - mean).sum(0)) / (n + w) - w * mean ** 2 / (n + w)
    np.testing.assert_allclose(stats["count"], n + w, rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats["var"], allx.var(0), rtol=1e-3)
    np.testing.assert_allclose(stats["var"], var, rtol=1e-3)
    # merging two workers' statistics is the statistics of their union
    a = normalization.update_stats(normalization.init_stats((3,)), jnp.asarray(batches[1]))
    b = normalization.update_stats(normalization.init_stats((3,)), jnp.asarray(batches[2]))
    both = normalization.merge_stats(a, b)
    union = np.concatenate([batches[1].reshape(-1, 3), batches[2].reshape(-1, 3)])
    np.testing.assert_allclose(both["mean"], union.mean(0), rtol=1e-4)
    np.testing.assert_allclose(both["var"], union.var(0), rtol=1e-3)


def test_network_normalises_with_its_statistics_and_no_gradient_reaches_them():
    net = networks.ActorCritic(action_dim=1, discrete=False, hidden=(8,), obs_norm=True)
    params = net.init(jax.random.key(0), jnp.zeros((1, 3)))
    assert set(params) == {"params", normalization.COLLECTION}
    stats = {"mean": jnp.array([1.0, -2.0, 0.5]), "var": jnp.array([4.0, 0.25, 1.0]),
             "count": jnp.array(10.0)}
    params = normalization.set_stats(params, stats)
    plain = networks.ActorCritic(action_dim=1, discrete=False, hidden=(8,))
    x = jax.random.normal(jax.random.key(1), (6, 3)) * 3
    z = jnp.clip((x - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-8), -10, 10)
    d1, v1 = net.apply(params, x)
    d2, v2 = plain.apply({"params": params["params"]}, z)
    chex.assert_trees_all_close((d1, v1), (d2, v2), rtol=1e-6)
    g = jax.grad(lambda p: net.apply(p, x)[1].sum())(params)
    for leaf in jax.tree.leaves(g[normalization.COLLECTION]):
        np.testing.assert_array_equal(leaf, np.zeros_like(leaf))


def test_a2c_statistics_are_updated_and_saved_with_the_checkpoint(tmp_path):
    c = Config(env="Pendulum-v1", num_envs=4, t_max=5, total_steps=2_000, hidden=(8,),
               seeds=(0, 1), progress=False, out=str(tmp_path), obs_norm=True)
    res = runner.run(c)
    env = Env("Pendulum-v1", 1)
    net = networks.make_actor_critic(runlog.read_config(tmp_path), env)
    template = networks.init_params(net, jax.random.key(5), env.obs_shape)
    for seed in (0, 1):
        loaded = runlog.load_params(tmp_path, seed, template)
        stats = loaded[normalization.COLLECTION]
        chex.assert_trees_all_equal(stats, res.params[seed][normalization.COLLECTION])
        # every observation acted on was merged in: count = steps (+ the prior's weight)
        np.testing.assert_allclose(stats["count"], 2_000, rtol=1e-4)
        assert 0.2 < float(stats["var"][0]) < 1.0     # cos(theta) of a hanging pendulum
        x = jnp.ones((2, 3))
        chex.assert_trees_all_equal(net.apply(loaded, x), net.apply(res.params[seed], x))


def test_a3c_statistics_live_in_the_shared_store():
    c = Config(algo="a3c", env="Pendulum-v1", workers=2, envs_per_worker=2, total_steps=2_000,
               hidden=(8,), seeds=(0,), progress=False, lr_anneal=False, obs_norm=True)
    res = runner.run(c, write=False)
    stats = res.params[0][normalization.COLLECTION]
    # Every segment's batch is merged into the current shared statistics: none is dropped.
    steps = len(res.update_rows) * c.steps_per_update
    assert float(stats["count"]) == pytest.approx(normalization.INIT_COUNT + steps, rel=1e-6)
    assert np.all(np.asarray(stats["var"]) > 0)


def test_store_merges_statistics_exactly_under_concurrency_and_never_steps_them():
    import threading

    from a3c_jax.core.optim import OptSpec
    from a3c_jax.drivers.asynchronous.store import SharedStore

    d, n_workers, batches = 3, 4, 50
    stats0 = normalization.init_stats((d,))
    flat0 = np.asarray(jax.flatten_util.ravel_pytree(stats0)[0])
    params = np.concatenate([np.ones(5, np.float32), flat0, np.ones(2, np.float32)])
    start, stop = 5, 5 + flat0.shape[0]
    store = SharedStore(params, OptSpec(name="sgd", lr=0.1, momentum=0.0))
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n_workers, batches, 8, d)).astype(np.float32) * 3 + 1

    def work(w):
        local = store.new_local_state()
        store.protect(start, stop)
        for b in range(batches):
            bs = normalization.batch_stats(stats0, jnp.asarray(data[w, b]))
            store.merge_stats(start, np.asarray(jax.flatten_util.ravel_pytree(bs)[0]))
            store.apply(np.ones_like(params), store.read(), local)  # non-zero on every entry

    threads = [threading.Thread(target=work, args=(w,)) for w in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = store.params[start:stop]
    all_x = data.reshape(-1, d)
    assert got[0] == pytest.approx(normalization.INIT_COUNT + all_x.shape[0], rel=1e-6)
    np.testing.assert_allclose(got[1:1 + d], all_x.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[1 + d:], all_x.var(0), rtol=1e-3)
    # the optimiser stepped everything else n_workers * batches times, the statistics never
    np.testing.assert_allclose(store.params[:5], 1 - 0.1 * n_workers * batches, rtol=1e-4)


def test_merge_flat_equals_merge_stats():
    rng = np.random.default_rng(3)
    a = {"count": jnp.float32(7.0), "mean": jnp.asarray(rng.normal(size=4), jnp.float32),
         "var": jnp.asarray(rng.uniform(0.5, 2, size=4), jnp.float32)}
    b = {"count": jnp.float32(3.0), "mean": jnp.asarray(rng.normal(size=4), jnp.float32),
         "var": jnp.asarray(rng.uniform(0.5, 2, size=4), jnp.float32)}
    flat = lambda t: np.asarray(jax.flatten_util.ravel_pytree(t)[0])  # noqa: E731
    np.testing.assert_allclose(normalization.merge_flat(flat(a), flat(b)),
                               flat(normalization.merge_stats(a, b)), rtol=1e-6)
    with pytest.raises(ValueError, match="merge_flat"):
        normalization.merge_flat(flat(a), flat(a)[:-1])


# --- reward scaling, advantage normalisation, GAE --------------------------------------------

def _traj(T=6, B=2, D=3, seed=0):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))  # noqa: E731
    return rollout.Trajectory(
        obs=f32(T, B, D), action=f32(T, B, 1), reward=f32(T, B),
        terminated=jnp.zeros((T, B), bool).at[2, 0].set(True),
        truncated=jnp.zeros((T, B), bool).at[3, 1].set(True), final_obs=f32(T, B, D),
        completed_return=jnp.zeros((T, B)), completed_length=jnp.zeros((T, B), jnp.int32))


def _gauss_net():
    net = networks.ActorCritic(action_dim=1, discrete=False, hidden=(8,))
    return net, net.init(jax.random.key(0), jnp.zeros((1, 3)))


def test_reward_scale_scales_the_rewards_in_the_loss_only():
    net, params = _gauss_net()
    traj = _traj()
    cfg = losses.LossConfig(0.9, 0.95, 0.5, 1e-4, "sum")
    scaled = losses.actor_critic_segment_loss(params, net.apply, traj,
                                              cfg._replace(reward_scale=0.1))
    manual = losses.actor_critic_segment_loss(params, net.apply,
                                              traj._replace(reward=traj.reward * 0.1), cfg)
    chex.assert_trees_all_close(scaled, manual, rtol=1e-6)


@pytest.mark.parametrize("how", ["sum", "step-mean", "env-mean"])
def test_advantage_normalisation_in_the_segment_loss(how):
    net, params = _gauss_net()
    traj = _traj()
    cfg = losses.LossConfig(0.9, 0.95, 0.5, 1e-4, how, adv_norm=True)
    loss, m = losses.actor_critic_segment_loss(params, net.apply, traj, cfg)
    dist, v = net.apply(params, traj.obs)
    _, vn = net.apply(params, traj.final_obs)
    g = jax.vmap(nstep_returns, (1, 1, 1, 1, None, None), 1)(
        traj.reward, traj.terminated, traj.truncated, vn, 0.9, 0.95)
    adv = np.asarray(g - v)
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    logp = np.asarray(dist.log_prob(traj.action))
    per_step = -logp * adv                          # [T, B]; every step of every segment
    expected = {"sum": per_step.sum(), "step-mean": per_step.mean(),
                "env-mean": per_step.mean(0).mean()}[how]
    np.testing.assert_allclose(m["policy_loss"], expected, rtol=1e-5, atol=1e-6)


def test_lambda_returns_minus_values_are_gae():
    """With lambda < 1 the advantage G^lambda_t - V(s_t) is GAE(gamma, lambda) (checked
    against rlax on a segment without episode ends, bootstrapped at its end)."""
    rlax = pytest.importorskip("rlax")
    rng = np.random.default_rng(1)
    r = jnp.asarray(rng.normal(size=8).astype(np.float32))
    v = jnp.asarray(rng.normal(size=9).astype(np.float32))     # V(s_0..s_8)
    no = jnp.zeros(8, bool)
    g = nstep_returns(r, no, no, v[1:], 0.9, 0.8)
    want = rlax.truncated_generalized_advantage_estimation(r, jnp.full(8, 0.9), 0.8, v)
    np.testing.assert_allclose(g - v[:-1], want, rtol=1e-5, atol=1e-6)


# --- both drivers, both continuous environments ------------------------------------------------

@pytest.mark.parametrize("env_name", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_both_drivers_run_continuous_envs(env_name):
    base = dict(env=env_name, hidden=(8,), total_steps=2_000, seeds=(0,), progress=False)
    r2 = runner.run(Config(algo="a2c", num_envs=4, **base), write=False)
    r3 = runner.run(Config(algo="a3c", workers=2, lr_anneal=False, **base), write=False)
    for res in (r2, r3):
        assert isinstance(res.config, Resolved) and res.config.entropy_coef == 1e-4
        p = jax.tree.leaves(res.params[0])
        assert all(np.isfinite(np.asarray(x)).all() for x in p)
        assert np.isfinite([r["entropy"] for r in res.rows]).all()
    if env_name == "Pendulum-v1":   # 200-step episodes: some ended; raw (unscaled) returns
        rets = [r["episode_return"] for r in r2.rows if r["episodes"]]
        assert rets and max(rets) < -100


# --- learning -------------------------------------------------------------------------------

PENDULUM_SEEDS = (0, 1, 2)
PENDULUM_BUDGET = 10_000_000
PENDULUM_THRESHOLD = -400.0


def pendulum_config(**overrides) -> Config:
    """The learning test's config: every hyperparameter is the per-action-space default, i.e.
    what ``experiments/train.py --algo a2c --env Pendulum-v1`` runs with no other flag."""
    return Config(algo="a2c", env="Pendulum-v1", total_steps=PENDULUM_BUDGET,
                  seeds=PENDULUM_SEEDS, stop_return=PENDULUM_THRESHOLD, progress=False,
                  log_interval=10_000, **overrides)


def test_pendulum_test_config_is_the_cli_default():
    cli = _train_cli()
    from a3c_jax.commands import cli as command_line

    parsed = command_line.parse_config(["--algo", "a2c", "--env", "Pendulum-v1"])
    budget_only = {"total_steps", "seeds", "stop_return", "progress", "log_interval"}
    a, b = resolve(parsed).to_dict(), resolve(pendulum_config()).to_dict()
    assert {k for k in a if a[k] != b[k]} <= budget_only
    assert cli.main is not None


@pytest.mark.learning
def test_a2c_learns_pendulum():
    """Sync A2C with the continuous defaults on Pendulum-v1, seeds vmapped in one call: every
    seed's smoothed return (10k-step window, the runner's early stop) reaches -400 within 10M
    env steps."""
    cfg = pendulum_config()
    res = runner.run(cfg, write=False)
    for seed in cfg.seeds:
        rs = [r for r in res.rows if r["seed"] == seed]
        steps = np.array([r["env_steps"] for r in rs])
        sm = curves.smoothed_returns(steps, np.array([r["episode_return"] for r in rs]),
                                     np.array([r["episodes"] for r in rs]), cfg.stop_window)
        first = curves.steps_to_threshold(steps, sm, PENDULUM_THRESHOLD)
        print(f"seed {seed}: smoothed return first >= {PENDULUM_THRESHOLD} at {first} env "
              f"steps (best {np.nanmax(sm):.1f})")
        assert np.isfinite(first) and first <= PENDULUM_BUDGET, seed
