"""Ray backend on a local Ray instance with 2 CPUs (skipped only when Ray is not installed)."""

import numpy as np
import pytest

pytestmark = pytest.mark.slow   # minutes of fresh processes: make test-long runs it

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install .[ray])")

from a3c_jax.core import curves
from a3c_jax.shell import files as runlog  # noqa: E402
from a3c_jax.config.schema import Config  # noqa: E402
from a3c_jax.drivers.asynchronous.backends.ray_actors import ensure_ray  # noqa: E402
from a3c_jax.drivers.records import update_rows  # noqa: E402
from a3c_jax.drivers.asynchronous.supervisor import train_seed  # noqa: E402
from a3c_jax.drivers.asynchronous.worker import AsyncWorker, Diverged, WorkerError  # noqa: E402

CFG = Config(algo="a3c", backend="ray", workers=2, total_steps=3_000, seeds=(0,),
             progress=False, lr_anneal=False)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ensure_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_ray_backend_runs_the_same_worker_loop():
    worker = AsyncWorker.from_config(CFG)
    got = train_seed(worker, 0)
    records = got.records
    assert got.stopped is None
    assert CFG.total_steps <= got.T < CFG.total_steps + CFG.steps_per_update
    assert len(records) == got.lost["updates"]
    assert {r.worker for r in records} == {0, 1}
    assert sorted(r.version_written for r in records) == list(range(1, len(records) + 1))
    assert not np.allclose(got.flat_params, worker.init_flat_params(0))


def test_ray_worker_failing_on_every_start_stops_the_run_after_its_restarts():
    def _raising_loss(params, apply_fn, traj, cfg):  # local: Ray pickles it by value
        raise ValueError("loss refused")

    worker = AsyncWorker.from_config(CFG.replace(max_restarts=1))
    got = train_seed(worker, 0, loss_fn=_raising_loss)
    assert isinstance(got.stopped, WorkerError)
    assert "loss refused" in str(got.stopped) and "after 1 restarts" in str(got.stopped)
    assert [e["worker"] for e in got.restarts] == [0]


def test_a_killed_ray_worker_is_restarted_and_the_run_completes_exactly(kill_at):
    cfg = CFG.replace(total_steps=30_000, hidden=(8,))   # ~1 min; 5 on a machine at load 11
    kill = kill_at(cfg.total_steps // 5, lambda running: running.where()[1][1])   # worker 1
    got = train_seed(AsyncWorker.from_config(cfg), 0, on_tick=kill, tick_s=0.05)
    event, missing = kill.check(got, cfg, "died")
    assert event["worker"] == 1
    assert len(missing) == event["unrecorded"]   # what died with the actor, counted
    ones = sorted(r.update for r in got.records if r.worker == 1)
    assert ones[-1] == len(ones) + event["unrecorded"] - 1   # indices continue after the gap
    assert any(r.worker == 1 and r.env_steps > event["T"] for r in got.records)   # it trained


def test_ray_max_restarts_zero_stops_the_run_at_the_first_death():
    import os
    import signal

    killed: list[int] = []

    def kill_soon(running, _per_worker):
        if not killed and running.T > 0:
            killed.append(running.where()[0][1])
            os.kill(killed[0], signal.SIGKILL)

    got = train_seed(AsyncWorker.from_config(CFG.replace(total_steps=50_000_000,
                                                         max_restarts=0)),
                     0, on_tick=kill_soon, tick_s=0.05)
    assert isinstance(got.stopped, WorkerError) and got.restarts == []


def test_ray_nonfinite_gradients_end_diverged_with_the_store_finite():
    import jax.numpy as jnp
    from a3c_jax.core import losses

    def _nan_loss(params, apply_fn, traj, cfg):  # local: Ray pickles it by value
        loss, m = losses.actor_critic_segment_loss(params, apply_fn, traj, cfg)
        return loss * jnp.nan, m

    worker = AsyncWorker.from_config(CFG)
    got = train_seed(worker, 0, loss_fn=_nan_loss)
    cause = got.stopped
    assert isinstance(cause, Diverged), repr(cause)
    assert cause.seed == 0 and cause.count >= CFG.max_nonfinite
    assert np.isfinite(got.flat_params).all()
    np.testing.assert_array_equal(got.flat_params, worker.init_flat_params(0))


@pytest.mark.learning
def test_a3c_learns_cartpole_on_ray():
    # 4 envs per worker: one parameter-server round trip per 20 env steps instead of 5. With
    # 1 env the run stalled below 475 within 1M steps once, while other work loaded the CPU.
    cfg = Config(algo="a3c", backend="ray", workers=2, envs_per_worker=4, total_steps=1_000_000,
                 seeds=(0,), progress=False, log_interval=1_000, stop_return=475.0)
    got = train_seed(AsyncWorker.from_config(cfg), 0)
    assert got.stopped is None
    first = curves.updates_steps_to(update_rows(0, got.records), 475.0)
    print(f"ray: env steps to 475 = {first}")
    assert np.isfinite(first) and first <= 1_000_000


def test_more_workers_than_cpus_still_fit():
    """4 workers on the 2-CPU instance: each asks for half a CPU and the run completes
    (asking for a whole CPU each would leave two actors pending forever)."""
    from a3c_jax.drivers.asynchronous.backends.ray_actors import worker_cpus

    assert worker_cpus({"CPU": 2.0}, 4) == 0.5
    assert worker_cpus({"CPU": 16.0}, 4) == 1.0
    with pytest.raises(RuntimeError, match="no CPUs"):
        worker_cpus({}, 2)
    cfg = CFG.replace(workers=4, total_steps=1_000)
    got = train_seed(AsyncWorker.from_config(cfg), 0)
    assert got.stopped is None
    assert {r.worker for r in got.records} == {0, 1, 2, 3}


def test_ray_run_stops_on_sigterm_and_resumes(tmp_path, monkeypatch):
    import os
    import signal

    from a3c_jax.shell import checkpoints, directory as rundir
    from a3c_jax.drivers.asynchronous.backends.ray_actors import RayLaunch
    from a3c_jax.shell.runner import run

    real, calls = RayLaunch.poll, [0]

    def poll(self, timeout):   # the first poll starts the actors; SIGTERM in the third
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, timeout)

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(RayLaunch, "poll", poll)
        cut = run(CFG.replace(total_steps=10_000_000, out=str(out)))   # the step compiled above
    assert cut.interrupted and cut.extras["signal"] == "SIGTERM"
    done = checkpoints.load(out)[0]["env_steps"]
    assert 0 < done < 10_000_000
    resumed = run(rundir.resume_config(out, total_steps=done + 1_000))
    assert not resumed.interrupted
    updates = runlog.read_csv(out / "updates.csv")
    versions = sorted(int(r["version_written"]) for r in updates)
    assert versions == list(range(1, len(updates) + 1))   # every update once, in both parts
    steps = [int(r["env_steps"]) for r in resumed.rows]
    assert steps == sorted(set(steps)) and steps[-1] == done + 1_000


def test_ray_worker_actors_run_pools_of_their_share():
    """Each worker actor (one of the instance's 2 CPUs) starts with every pool sized to one
    core, as the process backend's workers do; read back from the running actor process."""
    from a3c_jax import _xla
    from test_pools import _inside   # what a running process was started with

    seen: dict[int, dict] = {}

    def read(running, _per_worker):
        for _node, pid in running.where():
            if pid not in seen:
                seen[pid] = _inside(pid)["env"]

    got = train_seed(AsyncWorker.from_config(CFG), 0, on_tick=read, tick_s=0.05)
    assert got.stopped is None and len(seen) == CFG.workers
    for env in seen.values():
        assert all(env.get(v) == "1" for v in (*_xla.POOL_VARS, _xla.CORES_ENV)), env
        assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"].split()
