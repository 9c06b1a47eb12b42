"""The emulated backend: staleness models, reproducibility, exactness against the sync update,
hand-built staleness and target cases, trace replay, the same start as the threads, scripts."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from a3c_jax.core import curves
from a3c_jax.shell import files as runlog
from a3c_jax.core import staleness
from a3c_jax.drivers import synchronous as sync
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.drivers.emulated.runs import run_seeds, sweep
from a3c_jax.drivers.emulated.program import Emulator
from a3c_jax.shell.runner import run
from a3c_jax.drivers.asynchronous.worker import AsyncWorker

TINY = Config(algo="a3c", backend="emulated", env="CartPole-v1", workers=3, total_steps=1_500,
              seeds=(0,), hidden=(16,), progress=False, log_interval=100)


# --- staleness models (nothing compiles) ------------------------------------------------------

def test_schedules_follow_their_models_and_are_capped():
    n = 2_000
    assert staleness.schedule("fixed:3", n, 2, 0)[:6].tolist() == [0, 1, 2, 3, 3, 3]
    rr = staleness.schedule("round-robin", n, 4, 0)
    assert rr[:5].tolist() == [0, 1, 2, 3, 3] and (rr[3:] == 3).all()
    u = staleness.schedule("uniform:2:5", n, 1, 0)
    assert u[:2].tolist() == [0, 1] and set(u[5:].tolist()) == {2, 3, 4, 5}
    g = staleness.schedule("geometric:0.25", 20_000, 1, 7)
    assert abs(g[100:].mean() - 3.0) < 0.15 and g.min() == 0      # mean (1 - p) / p
    np.testing.assert_array_equal(g, staleness.schedule("geometric:0.25", 20_000, 1, 7))
    assert not np.array_equal(g, staleness.schedule("geometric:0.25", 20_000, 1, 8))
    assert staleness.block_size("round-robin", 16) == 16
    assert staleness.block_size("fixed:2", 16) == 3
    assert staleness.block_size("uniform:1:9", 4) == 2
    assert staleness.block_size("geometric:0.5", 8) == 1


@pytest.mark.parametrize("bad", ["", "fixed", "fixed:-1", "fixed:x", "uniform:3:1",
                                 "uniform:1", "geometric:0", "geometric:1.5", "lifo",
                                 ])
def test_bad_staleness_is_rejected_naming_the_option(bad):
    with pytest.raises(ValueError, match="staleness"):
        TINY.replace(staleness=bad).validate()


def test_a_missing_trace_is_refused_when_resolved_not_validated():
    """validate parses the model only; resolve reads the trace, before anything compiles."""
    from a3c_jax.config.defaults import resolve

    config = TINY.replace(staleness="trace:/no/such/run")
    assert config.validate() is config
    with pytest.raises(ValueError, match="staleness: trace '/no/such/run'"):
        resolve(config)


# --- runs -----------------------------------------------------------------------------------

def test_repeat_is_identical_and_records_are_consistent():
    cfg = TINY.replace(staleness="uniform:0:4", seeds=(0, 1))
    a, b = run(cfg, write=False), run(cfg, write=False)
    def strip(rows):   # NaN (a signal the method has not: sigma) compared as None
        return [{k: None if v != v else v for k, v in r.items() if k != "wall_time_s"}
                for r in rows]

    assert strip(a.update_rows) == strip(b.update_rows)
    for s in cfg.seeds:
        for x, y in zip(jax.tree.leaves(a.params[s]), jax.tree.leaves(b.params[s])):
            np.testing.assert_array_equal(x, y)
    rows = [r for r in a.update_rows if r["seed"] == 1]
    n = -(-cfg.total_steps // cfg.steps_per_update)
    assert len(rows) == n
    taus = staleness.schedule(cfg.staleness, n, cfg.workers, 1)
    for i, r in enumerate(rows):
        assert (r["worker"], r["update"], r["env_steps"]) == (i % 3, i // 3, (i + 1) * 5)
        assert r["version_written"] == i + 1 and r["staleness"] == taus[i]
        assert r["version_read"] == i - taus[i]
    assert {r["seed"] for r in a.rows} == {0, 1} and a.extras["block"] == 1


@pytest.mark.parametrize("kw", [{}, {"optimizer": "sgd", "obs_norm": True, "lr_anneal": False}])
def test_one_worker_without_staleness_is_the_sync_update_sequence(kw):
    cfg = resolve(TINY.replace(workers=1, staleness="fixed:0", total_steps=600, **kw))
    emu = Emulator(cfg)
    taus = staleness.schedule(cfg.staleness, emu.num_updates, 1, 0)
    plan = emu.plan([taus])
    state0 = jax.jit(emu.init, static_argnums=1)(0, plan)
    order = np.zeros_like(taus)
    state, out = jax.jit(emu.train, static_argnums=4)(0, *plan.blocks(taus, order), plan)
    trainer = sync.SyncTrainer(cfg.replace(backend="sync", num_envs=1))
    p0 = emu.params(state0)
    ts = sync.TrainState(params=p0, opt_state=trainer.optimizer.init(p0),
                         actor=jax.tree.map(lambda a: a[0], state0.actors),
                         key=state0.keys[0], update=jnp.zeros((), jnp.int32),
                         env_steps=jnp.zeros((), jnp.int32))
    ts, m = jax.jit(lambda s: trainer.run_chunk(s, emu.num_updates))(ts)
    for x, y in zip(jax.tree.leaves(emu.params(state)), jax.tree.leaves(ts.params)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(out.metrics.total_loss, m.total_loss)
    np.testing.assert_array_equal(out.metrics.return_sum / jnp.maximum(out.metrics.episodes, 1),
                                  jnp.nan_to_num(m.episode_return))


def _norm_loss(params, apply_fn, traj, cfg):
    """0.5 |theta|^2: its gradient is the parameters it was taken at."""
    loss = 0.5 * sum(jnp.sum(x * x) for x in jax.tree.leaves(params))
    return loss, {"policy_loss": loss, "value_loss": loss, "entropy": loss, "total": loss}


@pytest.mark.parametrize("k,block", [(3, None), (3, 1), (0, None)])
def test_fixed_k_takes_each_gradient_at_the_parameters_of_k_updates_earlier(k, block):
    # Plain SGD (no momentum) on 0.5 |theta|^2: theta_{i+1} = theta_i - lr theta_{i - k}.
    cfg = TINY.replace(workers=2, staleness=f"fixed:{k}", optimizer="sgd", momentum=0.0,
                       lr=0.1, lr_anneal=False, total_steps=40 * 5)
    got = run_seeds(resolve(cfg), loss_fn=_norm_loss, block=block)
    assert got.extras["block"] == (block or min(2, k + 1))
    x0, _ = ravel_pytree(jax.tree.map(np.asarray, Emulator(resolve(cfg)).algo.init_params(
        jax.random.split(jax.random.key(0))[0])))
    xs = [np.asarray(x0, np.float32)]
    for i in range(40):
        xs.append(xs[i] + np.float32(-0.1) * xs[i - min(k, i)])
    final = ravel_pytree(got.params[0])[0]
    np.testing.assert_allclose(final, xs[-1], rtol=1e-6, atol=1e-7)
    wrong = [xs[0]]
    for i in range(40):      # the same recurrence one update less stale differs clearly
        wrong.append(wrong[i] + np.float32(-0.1) * wrong[i - max(min(k - 1, i), 0)])
    assert k == 0 or np.abs(final - wrong[-1]).max() > 1e-3
    assert [r.version_read for r in got.records[0]] == [i - min(k, i) for i in range(40)]


def _target_loss(params, target, apply_fn, traj, cfg):
    """0.5 |theta|^2 + 0.25 theta . theta^-: gradient theta + 0.25 theta^-."""
    loss = sum(0.5 * jnp.sum(x * x) + 0.25 * jnp.sum(x * t)
               for x, t in zip(jax.tree.leaves(params), jax.tree.leaves(target)))
    return loss, {"q_loss": loss, "total": loss}


def test_target_copies_at_claims_and_is_read_with_the_stale_version():
    spu, interval, k, n = 5, 15, 2, 30
    cfg = resolve(TINY.replace(algo="q1", workers=2, staleness=f"fixed:{k}", optimizer="sgd",
                               momentum=0.0, lr=0.1, lr_anneal=False, total_steps=n * spu,
                               target_interval=interval))
    got = run_seeds(cfg, loss_fn=_target_loss)
    x0 = np.asarray(ravel_pytree(Emulator(cfg).algo.init_params(
        jax.random.split(jax.random.key(0))[0]))[0], np.float32)
    xs, tgt = [x0], [x0]    # tgt[u]: the target after the claim of update u
    for i in range(n):
        r = i - min(k, i)
        xs.append(xs[i] + np.float32(-0.1) * (xs[r] + np.float32(0.25) * tgt[r]))
        crossed = ((i + 2) * spu) // interval != ((i + 1) * spu) // interval
        tgt.append(xs[i + 1] if crossed else tgt[i])
    np.testing.assert_allclose(ravel_pytree(got.params[0])[0], xs[-1], rtol=1e-6, atol=1e-7)


def test_a_thread_trace_is_replayed_exactly(tmp_path):
    real = run(Config(algo="a3c", backend="threads", workers=2, total_steps=1_000, seeds=(0,),
                      hidden=(16,), progress=False), write=False)
    runlog.write_csv(tmp_path / "updates.csv", curves.UPDATE_COLUMNS, real.update_rows)
    rows = sorted(real.update_rows, key=lambda r: r["version_written"])
    trace = np.array([r["staleness"] for r in rows])
    order = np.array([r["worker"] for r in rows])
    emu = run(TINY.replace(workers=2, total_steps=2_000, staleness=f"trace:{tmp_path}"),
              write=False)
    assert len(trace) == 200 and len(emu.update_rows) == 400 and trace.max() > 0
    # the trace repeats; the order of the real writes is kept (W matches the trace's)
    np.testing.assert_array_equal([r["staleness"] for r in emu.update_rows],
                                  np.resize(trace, 400))
    np.testing.assert_array_equal([r["worker"] for r in emu.update_rows], np.resize(order, 400))
    for w in (0, 1):
        assert [r["update"] for r in emu.update_rows if r["worker"] == w] == list(
            range(int((np.resize(order, 400) == w).sum())))
    np.testing.assert_array_equal(staleness.read_trace(tmp_path / "updates.csv"), trace)
    # with another W the order is round-robin
    three = run(TINY.replace(workers=3, total_steps=1_000, staleness=f"trace:{tmp_path}"),
                write=False)
    assert [r["worker"] for r in three.update_rows][:6] == [0, 1, 2, 0, 1, 2]


def test_emulated_workers_start_where_thread_workers_do():
    cfg = resolve(TINY.replace(algo="q1", workers=3, envs_per_worker=2))
    emu, worker = Emulator(cfg), AsyncWorker(cfg.replace(backend="threads"))
    plan = emu.plan([np.zeros(emu.num_updates, np.int32)])
    assert plan.block == 1
    state = emu.init(5, plan)
    np.testing.assert_array_equal(ravel_pytree(emu.params(state))[0], worker.init_flat_params(5))
    for w in range(3):
        actor, key = worker.init_actor(5, w)
        for x, y in zip(jax.tree.leaves(actor), jax.tree.leaves(
                jax.tree.map(lambda a: a[w], state.actors))):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(jax.random.key_data(key),
                                      jax.random.key_data(state.keys[w]))


def test_blocks_agree_with_one_update_at_a_time():
    cfg = resolve(TINY.replace(workers=4, staleness="round-robin", total_steps=30 * 5))
    a, b = run_seeds(cfg), run_seeds(cfg, block=1)
    assert a.extras["block"] == 4
    for x, y in zip(jax.tree.leaves(a.params[0]), jax.tree.leaves(b.params[0])):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="block"):
        run_seeds(cfg.replace(staleness="fixed:1"), block=4)
    emu = Emulator(cfg)
    n = emu.num_updates
    taus = staleness.schedule("round-robin", n, 4, 0)
    assert emu.plan([taus]).block == 4
    twice = np.repeat(np.arange(n) % 4, 2)[:n]        # a worker writes twice in a row
    assert emu.plan([taus], [twice]).block == 1


def test_a_sweep_vmaps_seeds_and_models_in_one_call():
    cfg = resolve(TINY.replace(workers=1, total_steps=10_000))
    got = sweep(cfg, ["fixed:0", "fixed:4"], [0, 1], threshold=20.0, window=500,
                chunk_steps=1_000)
    assert got.steps_to.shape == (2, 2) and np.isfinite(got.steps_to).all()
    assert got.return_sum.shape[:2] == (2, 2) and got.return_sum.shape[2] < 2_000  # stopped
    assert got.mean_staleness[0].tolist() == [0, 0] and (got.mean_staleness[1] > 3.9).all()
    again = sweep(cfg, ["fixed:0", "fixed:4"], [0, 1], threshold=20.0, window=500,
                  chunk_steps=1_000)
    np.testing.assert_array_equal(got.steps_to, again.steps_to)
    np.testing.assert_array_equal(got.return_sum, again.return_sum)


@pytest.mark.learning
def test_emulated_a3c_learns_cartpole():
    res = run(Config(algo="a3c", backend="emulated", workers=2, total_steps=1_000_000,
                     seeds=(0, 1), stop_return=475.0, progress=False), write=False)
    for s in (0, 1):
        steps = curves.updates_steps_to([r for r in res.update_rows if r["seed"] == s], 475.0)
        assert np.isfinite(steps)


def test_until_terminal_segments_are_rejected_before_compiling():
    with pytest.raises(ValueError, match="segments"):
        TINY.replace(segments="until-terminal").validate()


def _script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_staleness_script_writes_both_studies(tmp_path, capsys):
    code = _script("staleness").main(["--taus", "0", "3", "--workers", "2", "--seeds", "0",
                                      "1", "--total-steps", "3000", "--threshold", "20",
                                      "--window", "500", "--out", str(tmp_path)])
    assert code == 0
    for name, settings in (("tau", ["tau=0", "tau=3"]), ("workers", ["W=2"])):
        table = runlog.read_csv(tmp_path / f"{name}.csv")
        assert [r["setting"] for r in table] == settings
        assert (tmp_path / f"{name}.png").stat().st_size > 0
        assert len(runlog.read_csv(tmp_path / f"{name}_seeds.csv")) == 2 * len(settings)
    assert "median steps" in capsys.readouterr().out
    assert _script("staleness").main(["--taus", "-1", "--out", str(tmp_path)]) == 2


def test_validation_script_replays_the_threads_traces(tmp_path, capsys):
    code = _script("validate_emulator").main([
        "--seeds", "0", "1", "--total-steps", "2000", "--threshold", "20", "--window", "500",
        "--references", "fixed:0", "--out", str(tmp_path)])
    assert code == 0
    table = runlog.read_csv(tmp_path / "validation.csv")
    assert [r["setting"] for r in table] == ["threads", "emulated trace", "emulated fixed:0"]
    for s in (0, 1):
        np.testing.assert_array_equal(
            staleness.read_trace(tmp_path / "emulated_trace", s)[:50],
            staleness.read_trace(tmp_path / "threads", s)[:50])
    assert "Mann-Whitney" in capsys.readouterr().out
