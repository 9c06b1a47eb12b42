"""The paper's segments (``--segments until-terminal``) and the three ways to combine a batch
of segments (``--combine``): hand-computed reductions and gradients, the unroll's mask, the
sync driver's env-step count and the asynchronous worker's claims."""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.core import combine, losses, value_losses
from a3c_jax.config import defaults
from a3c_jax.config.schema import Config
from a3c_jax.core.rollout import Trajectory
from a3c_jax.drivers.synchronous import make_train
from a3c_jax.drivers.asynchronous.worker import AsyncWorker

NAN = np.nan

# T = 3, N = 2: env 0's segment ended after one step (T_0 = 1), env 1's ran t_max (T_1 = 3).
# Steps outside a segment hold values that must not count, NaN included.
X = np.array([[1.0, 4.0], [100.0, 5.0], [NAN, 6.0]], np.float32)
MASK = np.array([[True, True], [False, True], [False, True]])


@pytest.mark.parametrize("how, expected", [
    ("sum", 1 + 4 + 5 + 6),                       # 16
    ("step-mean", (1 + 4 + 5 + 6) / 4),           # 16 / (T_0 + T_1) = 4
    ("env-mean", (1 / 1 + (4 + 5 + 6) / 3) / 2),  # (1 + 5) / 2 = 3
])
def test_combine_hand_computed_where_lengths_differ(how, expected):
    got = combine.combine(jnp.asarray(X), jnp.asarray(MASK), how)
    assert float(got) == pytest.approx(expected)


def test_combine_coincides_where_lengths_are_equal():
    """T_n = T for every n: step-mean = env-mean, sum = N T step-mean, with or without an
    all-True mask."""
    x = jnp.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])     # T = 3, N = 2
    for mask in (None, jnp.ones((3, 2), bool)):
        s, sm, em = (float(combine.combine(x, mask, h)) for h in combine.COMBINES)
        assert (s, sm, em) == pytest.approx((24.0, 4.0, 4.0))
        assert s == pytest.approx(2 * 3 * sm)


def test_gradients_of_the_three_combinations():
    """Per-step loss (theta - y)^2 at theta = 0, so each step's gradient is -2 y. Env 0:
    one step, y = 3 (gradient -6); env 1: three steps, y = 1 (gradients -2, -2, -2).

        sum        -6 - 6                = -12   (the paper's accumulated gradient)
        step-mean  -12 / 4               = -3    (the step-weighted mean)
        env-mean   (-6 / 1 - 6 / 3) / 2  = -4    (the mean of per-env means: not -3)
    """
    y = jnp.asarray([[3.0, 1.0], [7.0, 1.0], [7.0, 1.0]])
    mask = jnp.asarray(MASK)

    def grad(how):
        return float(jax.grad(lambda th: combine.combine(jnp.square(th - y), mask, how))(0.0))

    assert grad("sum") == pytest.approx(-12.0)
    assert grad("step-mean") == pytest.approx(-3.0)
    assert grad("env-mean") == pytest.approx(-4.0)
    # equal lengths (both envs three steps, both y = 1): step-mean and env-mean coincide
    full = jnp.ones((3, 2), bool)
    ones = jnp.ones((3, 2))
    g = {h: float(jax.grad(lambda th: combine.combine(jnp.square(th - ones), full, h))(0.0))
         for h in combine.COMBINES}
    assert g["step-mean"] == pytest.approx(g["env-mean"]) == pytest.approx(-2.0)
    assert g["sum"] == pytest.approx(-12.0)


def test_combine_rejects_unknown_names():
    with pytest.raises(ValueError, match="combine"):
        combine.combine(jnp.ones((2, 2)), None, "mean")
    with pytest.raises(ValueError, match="combine"):
        losses.loss_config(defaults.resolve(Config()).replace(combine="median"))


# --- the masked losses: steps outside a segment change nothing ----------------------------

def _masked_traj(seed=0, T=4, B=3, D=2):
    rng = np.random.default_rng(seed)
    f32 = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    lengths = np.array([1, 4, 2])
    mask = np.arange(T)[:, None] < lengths[None, :]
    term = np.zeros((T, B), bool)
    term[0, 0] = True                 # env 0's segment ends with its episode
    trunc = np.zeros((T, B), bool)
    trunc[1, 2] = True                # env 2's ends at a time limit
    return Trajectory(obs=f32(T, B, D), action=jnp.asarray(rng.integers(0, 2, (T, B)),
                                                           jnp.int32),
                      reward=f32(T, B), terminated=jnp.asarray(term),
                      truncated=jnp.asarray(trunc), final_obs=f32(T, B, D),
                      completed_return=jnp.zeros((T, B)), completed_length=jnp.zeros((T, B)),
                      next_action=jnp.asarray(rng.integers(0, 2, (T, B)), jnp.int32),
                      mask=jnp.asarray(mask))


def _ac_apply(p, obs):
    return obs @ p["W"], obs @ p["w"]


def _q_apply(p, obs):
    return obs @ p["W"]


def _garbage_outside(traj):
    """``traj`` with other values on every step outside the segments."""
    out = ~np.asarray(traj.mask)
    noise = lambda x, v: jnp.where(out.reshape(out.shape + (1,) * (x.ndim - 2)), v, x)  # noqa
    return traj._replace(obs=noise(traj.obs, 7.0), reward=noise(traj.reward, 50.0),
                         final_obs=noise(traj.final_obs, -3.0),
                         action=noise(traj.action, 1), next_action=noise(traj.next_action, 0))


@pytest.mark.parametrize("how", combine.COMBINES)
def test_masked_losses_ignore_steps_outside_segments(how):
    traj = _masked_traj()
    other = _garbage_outside(traj)
    cfg = losses.LossConfig(gamma=0.9, gae_lambda=1.0, value_coef=0.5, entropy_coef=0.01,
                            combine=how)
    rng = np.random.default_rng(1)
    ac = {"W": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32),
          "w": jnp.asarray(rng.normal(size=2), jnp.float32)}
    fns = [lambda p, t: losses.actor_critic_segment_loss(p, _ac_apply, t, cfg)[0]]
    q = {"W": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32)}
    for seg in (value_losses.q_learning_segment_loss, value_losses.sarsa_segment_loss,
                value_losses.nstep_q_segment_loss):
        fns.append(lambda p, t, seg=seg: seg(p, q, _q_apply, t, cfg)[0])
    for fn, p in zip(fns, [ac, q, q, q]):
        a, ga = jax.value_and_grad(fn)(p, traj)
        b, gb = jax.value_and_grad(fn)(p, other)
        assert float(a) == pytest.approx(float(b), rel=1e-6)
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5), ga, gb)


def test_masked_actor_critic_loss_equals_per_segment_losses():
    """With a mask, ``sum`` is the sum of each env's loss over its own T_n steps alone."""
    traj = _masked_traj()
    cfg = losses.LossConfig(gamma=0.9, gae_lambda=1.0, value_coef=0.5, entropy_coef=0.01,
                            combine="sum")
    p = {"W": jnp.asarray([[0.3, -0.2], [0.1, 0.4]]), "w": jnp.asarray([0.5, -1.0])}
    total = float(losses.actor_critic_segment_loss(p, _ac_apply, traj, cfg)[0])
    per = 0.0
    for b, n in enumerate([1, 4, 2]):
        sl = lambda x: x[:n, b]  # noqa: E731
        logits, v = _ac_apply(p, sl(traj.obs))
        _, v_next = _ac_apply(p, sl(traj.final_obs))
        from a3c_jax.core.returns import nstep_returns
        g = nstep_returns(sl(traj.reward), sl(traj.terminated), sl(traj.truncated), v_next,
                          0.9)
        per += float(losses.actor_critic_loss(logits, v, sl(traj.action), g, value_coef=0.5,
                                              entropy_coef=0.01)[0])
    assert total == pytest.approx(per, rel=1e-5)


# --- the unroll ------------------------------------------------------------------------------

def _segments(algo_name="a3c", num_envs=4, t_max=8, n_segments=12, **kw):
    c = defaults.resolve(Config(algo=algo_name, hidden=(8,), t_max=t_max,
                                segments="until-terminal", **kw))
    algo = algorithm.make_algorithm(c, num_envs)
    params = algo.init_params(jax.random.key(0))
    eps = jnp.full((num_envs,), 0.5) if algo.is_value else None
    actor = algo.init_actor(jax.random.key(1), eps)
    unroll = jax.jit(algo.unroll)
    trajs, actors = [], []
    for i in range(n_segments):
        actor, traj = unroll(params, actor, jax.random.key(10 + i))
        trajs.append(jax.device_get(traj))
        actors.append(actor)
    return algo, trajs, actors


@pytest.mark.parametrize("algo_name", ["a3c", "sarsa"])
def test_until_terminal_segments_end_at_episode_ends(algo_name):
    """Each env's mask is a prefix of 1..t_max steps; a segment shorter than t_max ends with
    an episode end; across segments an env's steps follow one another (each step's obs is the
    previous step's final obs unless an episode ended there), so no step is lost or repeated:
    every completed episode's length is the number of masked steps it spanned."""
    _, trajs, _ = _segments(algo_name)
    lengths = []
    for tr in trajs:
        m = tr.mask
        n = m.sum(0)
        assert (n >= 1).all()
        assert (m == (np.arange(m.shape[0])[:, None] < n[None, :])).all()   # prefixes
        done = tr.terminated | tr.truncated
        assert not (done & ~m).any() and (tr.reward[~m] == 0).all()
        for b in range(m.shape[1]):
            if n[b] < m.shape[0]:
                assert done[n[b] - 1, b]
        lengths.append(n)
    assert any((n < trajs[0].mask.shape[0]).any() for n in lengths)   # some segments ended early
    B = trajs[0].mask.shape[1]
    for b in range(B):
        steps = [(tr.obs[t, b], tr.final_obs[t, b], (tr.terminated | tr.truncated)[t, b],
                  tr.completed_length[t, b], tr.action[t, b],
                  None if tr.next_action is None else tr.next_action[t, b])
                 for tr in trajs for t in range(tr.mask.shape[0]) if tr.mask[t, b]]
        since = 0
        for (obs, fin, done, clen, act, nxt), later in zip(steps, steps[1:] + [None]):
            since += 1
            if done:
                assert clen == since
                since = 0
            elif later is not None:
                np.testing.assert_array_equal(later[0], fin)
                if nxt is not None:          # SARSA: the recorded next action is taken next
                    assert later[4] == nxt


def test_until_terminal_value_steps_and_recurrent_carry():
    """The epsilon schedule advances by the steps taken (per env, on average); a recurrent
    carry is zero where a segment ended with its episode (the next segment starts afresh)."""
    algo, trajs, actors = _segments("nq", num_envs=4)
    taken = [int(t.mask.sum()) // 4 for t in trajs]
    assert int(actors[-1].steps) == sum(taken) < 8 * len(trajs)
    _, trajs, actors = _segments("a3c", recurrent=True, lstm_size=4)
    for tr, actor in zip(trajs, actors):
        ended = (tr.terminated | tr.truncated)[tr.mask.sum(0) - 1, np.arange(4)]
        c, h = jax.device_get(actor.carry)
        assert (c[ended] == 0).all() and (h[ended] == 0).all()
        if (~ended).any():
            assert np.abs(h[~ended]).sum() > 0


def test_sync_driver_counts_the_steps_taken():
    """The sync driver's env-step counter is the sum of the masks; the target copies follow
    it; metrics report it; with fixed segments it is updates * t_max * N as before."""
    c = Config(algo="nq", backend="sync", num_envs=4, t_max=5, total_steps=400, hidden=(8,),
               target_interval=50, segments="until-terminal", lr_anneal=False)
    tr = make_train(c)
    state = tr.init(jax.random.key(0))
    taken, copies = 0, 0
    upd = jax.jit(tr.update)
    for _ in range(tr.num_updates):
        before = state
        state, m = upd(state)
        step = int(state.env_steps) - int(before.env_steps)
        assert 4 <= step <= 20
        taken += step
        assert int(m.env_steps) == taken
        crossed = taken // 50 != (taken - step) // 50
        same = bool(jnp.all(state.target_params["params"]["Dense_0"]["kernel"]
                            == state.params["params"]["Dense_0"]["kernel"]))
        assert same == crossed
        copies += crossed
    assert taken < tr.num_updates * 20 and copies == taken // 50
    fixed = make_train(c.replace(segments="fixed"))
    s, m = jax.jit(fixed.train)(jax.random.key(0))
    assert int(s.env_steps) == fixed.num_updates * 20
    np.testing.assert_array_equal(m.env_steps, 20 * np.arange(1, fixed.num_updates + 1))


# --- the asynchronous worker: T counts the steps taken -------------------------------------

class _Store:
    """A minimal store for the worker loop: exact claims, nothing applied."""

    def __init__(self):
        self.T, self.claims, self.lock = 0, [], threading.Lock()

    def claim_steps(self, n, budget, interval=0):
        with self.lock:
            if self.T >= budget:
                return None
            before, self.T = self.T, self.T + n
        self.claims.append(n)
        return before, before + n

    def read(self):
        from a3c_jax.drivers.asynchronous.store import Snapshot
        return Snapshot(np.zeros(self.n, np.float32), 0, None)

    def new_local_state(self):
        return None

    def apply(self, grad, snap, local, t=None):
        from a3c_jax.drivers.asynchronous.store import WriteRecord
        return WriteRecord(0, 0, 0)


def test_worker_claims_only_the_steps_its_segments_take():
    """The loop keeps what a segment did not use as a credit against its next claim: with
    segments of random lengths, T ends within one segment of the steps actually taken."""
    w = AsyncWorker.from_config(Config(algo="a3c", hidden=(4,), t_max=5, envs_per_worker=2,
                                       total_steps=2000, segments="until-terminal"))
    layout, n_steps = w.layout, w.config.steps_per_update
    rng = np.random.default_rng(0)
    used = []

    def fake_step(params, target, actor, key):
        k = int(rng.integers(2, n_steps + 1))       # every env takes at least one step
        used.append(k)
        out = np.zeros(layout.num_params + layout.num_stats + len(algorithm.Metrics._fields)
                       + 2, np.float32)
        out[-2], out[-1] = k, 1.0   # the steps taken, and a finite gradient
        return out, actor, key

    w.step, w._compiled = fake_step, True
    store = _Store()
    store.n = layout.num_params
    w.loop(0, 0, store, lambda: 0.0, [])(threading.Event())
    assert store.T >= 2000 and store.T - sum(used) < n_steps
    assert store.claims[0] == n_steps and min(store.claims) < n_steps


def test_segments_script_writes_runs_figure_and_table(tmp_path, repo_root):
    """experiments/segments.py at a tiny budget: six runs (two segment kinds x three
    combinations), one figure, one summary row per pair."""
    import importlib.util
    import sys

    import pandas as pd

    spec = importlib.util.spec_from_file_location("segments_script",
                                                  repo_root / "experiments/segments.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["segments_script"] = mod
    spec.loader.exec_module(mod)
    rc = mod.main(["--num-envs", "2", "--total-steps", "400", "--seeds", "0",
                   "--threshold", "20", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    for seg in ("fixed", "until-terminal"):
        for how in combine.COMBINES:
            cfg = Config.from_dict(__import__("json").loads(
                (tmp_path / f"{seg}_{how}" / "config.json").read_text()))
            assert (cfg.segments, cfg.combine, cfg.is_sync) == (seg, how, True)
    assert (tmp_path / "segments.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "summary.csv")
    assert len(table) == 6 and "until-terminal / env-mean" in set(table["method"])
