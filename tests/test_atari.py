"""Atari through the Arcade Learning Environment (a3c_jax.core.atari): ids checked before any work,
the adapter's step semantics (final observation, lives, truncation, whole-game returns), the
paper's network, and A2C, A3C (2 threads) and n-step Q training on Pong at a tiny budget, with
evaluation and a video of the run."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import atari, envs, networks
from a3c_jax.analysis import policy as saved, video
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run

pytestmark = pytest.mark.xdist_group("atari")
PONG = "ALE/Pong-v5"
SHORT = 800          # emulator frames per game: 200 agent steps, so games end in the budget


@pytest.mark.parametrize("changes, match", [
    (dict(env="ALE/Pongg-v5"), "env: unknown Atari game 'ALE/Pongg-v5'.*ALE/Pong-v5"),
    (dict(env="ALE/NoSuchGame-v5"), "env: unknown Atari game"),
    (dict(env=PONG, noop_max=-1), "noop_max must be an integer >= 0"),
    (dict(env=PONG, max_episode_frames=0), "max_episode_frames must be an integer >= 1"),
    (dict(env=PONG, repeat_action_probability=1.5), "repeat_action_probability"),
    (dict(env=PONG, resume=True), "resume: a synchronous run on an Atari game"),
])
def test_bad_atari_options_fail_before_any_work(changes, match):
    with pytest.raises(ValueError, match=match):
        Config(**changes).validate()


def test_ids_route_to_the_atari_family():
    envs.check_env_name(PONG)
    assert envs.is_discrete(PONG) and atari.num_actions(PONG) == 6
    env = envs.make_env(PONG, 2, Config(env=PONG, noop_max=0), training=True)
    assert isinstance(env, atari.AtariEnv) and env.options.noop_max == 0
    assert env.options.life_loss_terminal
    assert not envs.make_env(PONG, 1, Config(env=PONG)).options.life_loss_terminal


def _play(env, key, steps):
    """Random actions for ``steps`` steps: the states' observations and every StepOut."""
    def step(state, k):
        action = jax.random.randint(k, (env.num_envs,), 0, env.num_actions)
        new, out = env.step(k, state, action)
        return new, (state.obs, state.inner.lives, out)

    return jax.jit(lambda k: jax.lax.scan(step, env.reset(k), jax.random.split(k, steps)))(key)


@pytest.mark.parametrize("life_loss", [True, False])
def test_step_semantics_match_the_gymnax_adapter(life_loss):
    env = atari.AtariEnv("ALE/Breakout-v5", 3, atari.AtariOptions(
        life_loss_terminal=life_loss, max_episode_frames=600))
    _, (obs, lives, out) = jax.device_get(_play(env, jax.random.key(0), 400))
    assert obs.dtype == np.uint8 and obs.shape == (400, 3, 84, 84, 4)
    over = out.completed_length > 0                   # a game ended (or was truncated)
    assert over.sum() >= 3 and out.truncated.any()
    # obs after a step is the next state's; the final observation differs only where it ended
    np.testing.assert_array_equal(obs[1:], out.obs[:-1])
    np.testing.assert_array_equal(out.final_obs[~over], out.obs[~over])
    assert all((out.final_obs[t, b] != out.obs[t, b]).any() for t, b in np.argwhere(over))
    # the frame stack shifts by one frame per step within a game
    np.testing.assert_array_equal(obs[1:, ..., :3][~over[:-1]], obs[:-1, ..., 1:][~over[:-1]])
    lost = (lives[1:] < lives[:-1]) & ~over[:-1]
    assert lost.any()
    assert (out.terminated[:-1][lost] == life_loss).all()
    assert not (out.terminated & out.truncated).any()
    assert (out.completed_return[~over] == 0).all()
    # games are whole: a lost life never completes an episode, returns are scores
    assert (out.completed_length[over] > 1).all()
    assert set(np.unique(out.reward)) <= {0.0, 1.0}


def test_vmapped_seeds_get_their_own_games():
    env = atari.AtariEnv(PONG, 2, atari.AtariOptions(max_episode_frames=SHORT))
    run1 = lambda k: _play(env, k, 30)[1][2].obs    # noqa: E731
    both = jax.jit(jax.vmap(run1))(jax.vmap(jax.random.key)(jnp.arange(2)))
    np.testing.assert_array_equal(both[0], run1(jax.random.key(0)))
    assert not np.array_equal(both[0], both[1])


def test_the_papers_network_for_atari_ids():
    env = atari.AtariEnv(PONG, 1)
    config = Config(env=PONG, obs_norm=False, shared_torso=True)
    assert networks.resolve_torso("auto", env.obs_shape) == "atari"
    net = networks.make_actor_critic(config, env)
    params = jax.jit(lambda k: networks.init_params(net, k, env.obs_shape))(
        jax.random.key(0))["params"]
    torso = params["ConvTorso_0"]
    chex.assert_shape(torso["Conv_0"]["kernel"], (8, 8, 4, 16))
    chex.assert_shape(torso["Conv_1"]["kernel"], (4, 4, 16, 32))
    chex.assert_shape(torso["Dense_0"]["kernel"], (9 * 9 * 32, 256))
    chex.assert_shape(params["Dense_0"]["kernel"], (256, 6))      # policy
    chex.assert_shape(params["Dense_1"]["kernel"], (256, 1))      # value
    frames = jax.random.randint(jax.random.key(1), (2, 84, 84, 4), 0, 256).astype(jnp.uint8)
    logits, value = jax.jit(net.apply)({"params": params}, frames)
    chex.assert_shape((logits, value), ((2, 6), (2,)))
    # the network divides the uint8 frames by 255 itself
    scaled = jax.jit(networks.ConvTorso(layers=networks.ATARI_LAYERS).apply)(
        {"params": torso}, frames.astype(jnp.float32) / 255.0)
    np.testing.assert_allclose(jax.jit(networks.make_torso("atari", ()).apply)(
        {"params": torso}, frames), scaled, rtol=1e-5, atol=1e-5)
    # the variants' shapes only (traced, nothing computed)
    lstm = networks.make_actor_critic(config.replace(recurrent=True), env)
    lp = jax.eval_shape(lambda k: networks.init_params(lstm, k, env.obs_shape),
                        jax.random.key(0))["params"]
    chex.assert_shape(lp["lstm"]["hi"]["kernel"], (256, 256))
    q = networks.make_q_network(config.replace(algo="nq"), env)
    qp = jax.eval_shape(q.init, jax.random.key(0), frames)["params"]
    chex.assert_shape(qp["ConvTorso_0"]["Conv_0"]["kernel"], (8, 8, 4, 16))


CASES = {
    "a2c": dict(algo="a2c", num_envs=4, total_steps=2_000),
    "a3c": dict(algo="a3c", workers=2, backend="threads", total_steps=1_000),
    "nq": dict(algo="nq", workers=2, backend="threads", total_steps=1_000),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, case in CASES.items():
        config = Config(env=PONG, seeds=(0,), t_max=5, max_episode_frames=SHORT,
                        progress=False, checkpoint_s=0,
                        out=str(tmp_path_factory.mktemp("atari") / name), **case)
        out[name] = (config, run(config))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_pong_trains_with_every_driver(runs, name):
    config, result = runs[name]
    rows = result.rows
    assert max(r["env_steps"] for r in rows) >= config.total_steps
    assert sum(r["episodes"] for r in rows) >= 2, "no game of Pong ended"
    returns = np.array([r["episode_return"] for r in rows], np.float64)
    finite = returns[np.isfinite(returns)]
    assert finite.size and (finite >= -21).all() and (finite <= 21).all()
    for key in ("value_loss", "total_loss") + (("policy_loss",) if name != "nq" else ()):
        assert np.isfinite([r[key] for r in rows]).all(), key
    run_dir = result.run_dir
    for f in ("config.json", "metrics.csv", "params_seed0.msgpack"):
        assert (run_dir / f).is_file(), f


def test_evaluate_and_video_of_a_pong_run(runs, tmp_path):
    config, result = runs["a2c"]
    policy = saved.load_policy(result.run_dir, 0)
    assert policy.max_episode_steps == SHORT // 4
    ev = saved.evaluate(policy, 2, jax.random.key(0))
    assert ev["finished"].all() and (ev["lengths"] == SHORT // 4).all()
    assert (np.abs(ev["returns"]) <= 21).all()
    ep = video.save_episode_video(result.run_dir, 0, tmp_path / "pong.gif", max_steps=40)
    assert ep.frames.shape == (40, 336, 336, 3) and (tmp_path / "pong.gif").is_file()
    assert not np.array_equal(ep.frames[0], ep.frames[-1])
