"""The run directory as the record of a run: bad input refused before any work, curves that
grow on disk (rows by env steps or by time), run.json, signals. Fast: nothing here trains
except one tiny run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

from a3c_jax.core import curves
from a3c_jax.drivers import binning, records
from a3c_jax.shell import sink as rowsink, directory as rundir, files as runlog, signals
from a3c_jax.config.schema import Config
from a3c_jax.drivers.records import UpdateRecord
from a3c_jax.shell.runner import InvalidInput, run

TINY = Config(algo="a2c", num_envs=2, total_steps=200, seeds=(0,), hidden=(8,),
              progress=False)


def rec(worker, env_steps, wall, version, ret=0.0, eps=0.0):
    # V scored on 5 steps: Var[G] = 30/5 - (10/5)^2 = 2, Var[G - V] = 2.5/5 = 0.5
    return UpdateRecord(worker, 0, env_steps, wall, version - 1, version, 0, ret, eps,
                        1.0, 2.0, 0.5, 3.0, 4.0, 0.5, 5.0, 10.0, 30.0, 0.0, 2.5)


# --- bad input: refused with the option named, nothing written -----------------------------

def test_out_through_a_file_or_unwritable_is_refused_before_anything(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, word in ((afile, "is a file"), (afile / "run", "is a file"),
                      ("/proc/a3c_jax_x/run", "cannot write")):
        with pytest.raises(InvalidInput, match=rf"^out: .*{word}"):
            run(TINY.replace(out=str(out)))
    assert afile.read_text() == "x" and not os.path.exists("/proc/a3c_jax_x")


def test_existing_run_directory_is_refused_unless_overwrite_or_resume(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "eval.json").write_text("stale")
    with pytest.raises(InvalidInput, match="already holds a run.*--overwrite.*--resume"):
        rundir.prepare(TINY.replace(out=str(out)).validate())
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "eval.json"]
    with pytest.raises(ValueError, match="^overwrite and resume exclude"):
        TINY.replace(out=str(out), overwrite=True, resume=True).validate()
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="^overwrite: .* holds no run"):
        rundir.prepare(TINY.replace(out=str(other), overwrite=True).validate())
    assert (other / "keep.txt").read_text() == "mine"
    # --overwrite clears the old run (its stale evaluation and checkpoint go with it)
    (out / "checkpoint.msgpack").write_bytes(b"old")
    rundir.prepare(TINY.replace(out=str(out), overwrite=True).validate())
    assert list(out.iterdir()) == []


def test_a_folder_that_holds_no_run_is_refused_and_overwrite_keeps_foreign_files(tmp_path):
    """A user's own folder is never written into, and --overwrite removes only what a run
    wrote: files planted beside a run (notes, a plot folder) survive it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(InvalidInput, match="^(out|overwrite): .* holds no run"):
            rundir.prepare(TINY.replace(out=str(mine), overwrite=overwrite).validate())
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    run_dir = tmp_path / "run"
    run(TINY.replace(out=str(run_dir)))
    (run_dir / "notes.txt").write_text("keep me")
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "mine.png").write_bytes(b"png")
    (run_dir / "config.json.bak").write_text("{}")
    written = {p.name for p in rundir.run_written(run_dir)}
    assert {"config.json", "run.json", "metrics.csv"} <= written
    assert not written & {"notes.txt", "figures", "config.json.bak"}
    run(TINY.replace(out=str(run_dir), overwrite=True))
    assert (run_dir / "notes.txt").read_text() == "keep me"
    assert (run_dir / "figures" / "mine.png").read_bytes() == b"png"
    assert (run_dir / "config.json.bak").exists() and (run_dir / "run.json").exists()


def test_out_that_holds_no_run_exits_2_naming_the_flag(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    from a3c_jax.commands import train

    assert train.main(["--total-steps", "800", "--out", str(mine)]) == 2
    assert "--out" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_resume_refuses_a_missing_run_and_a_changed_config(tmp_path):
    with pytest.raises(InvalidInput, match="^resume: there is no run to continue"):
        run(TINY.replace(out=str(tmp_path / "none"), resume=True))
    assert not (tmp_path / "none").exists()
    out = tmp_path / "run"
    out.mkdir()
    runlog.write_config(out, TINY.replace(out=str(out), lr=1e-3))
    with pytest.raises(InvalidInput, match=r"^resume: .*lr is 0\.002, the run has 0\.001"):
        run(TINY.replace(out=str(out), resume=True, lr=2e-3))
    with pytest.raises(InvalidInput, match="^resume: .*write=True"):
        run(TINY.replace(out=str(out), resume=True, lr=1e-3), write=False)


@pytest.mark.parametrize("algo", ["a2c", "a3c", "q1", "sarsa", "nq"])
@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar"])
def test_every_algorithm_and_action_space_pair_is_accepted_or_refused(algo, env):
    from a3c_jax.algorithms.interface import make_algorithm
    from a3c_jax.config.defaults import resolve

    import jax

    config = Config(algo=algo, env=env, hidden=(8,), progress=False)
    if algo in ("q1", "sarsa", "nq") and env == "Pendulum-v1":
        with pytest.raises(ValueError, match=f"^algo {algo} needs a discrete action space, "
                                             f"and env Pendulum-v1 has continuous"):
            config.validate()
        return
    config = resolve(config.validate())
    algorithm = make_algorithm(config, 2)        # builds, and initialises without compiling
    assert jax.tree.leaves(algorithm.init_params(jax.random.key(0)))


def test_unsendable_loss_fn_is_refused_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = TINY.replace(algo="a3c", backend="processes", out=str(out))
    with pytest.raises(InvalidInput, match="^loss_fn: .*lambda.* cannot be sent to worker "
                                           "processes.*--backend threads"):
        run(cfg, loss_fn=lambda *a: None)

    def notebook_loss(params, apply_fn, traj, cfg):
        return 0.0, {}

    notebook_loss.__module__ = "__main__"
    notebook_loss.__qualname__ = "notebook_loss"
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # no __file__
    monkeypatch.setattr(sys.modules["__main__"], "notebook_loss", notebook_loss, raising=False)
    with pytest.raises(InvalidInput, match="^loss_fn: notebook_loss is defined in a notebook"):
        run(cfg, loss_fn=notebook_loss)
    assert not out.exists()


def test_run_json_and_curves_of_a_tiny_run(tmp_path):
    out = tmp_path / "run"
    seen = Collect()
    result = run(TINY.replace(out=str(out), checkpoint_s=0.0), subscribers=[seen])
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "completed" and info["signal"] is None and info["error"] is None
    for key in ("started", "ended", "a3c_jax", "git_commit", "python", "jax", "jaxlib",
                "device", "cpu_count", "argv", "pid", "host"):
        assert key in info, key
    assert info["jax"] and info["device"]["count"] >= 1 and info["cpu_count"] == os.cpu_count()
    assert seen.seen == result.rows and len(result.rows) > 1   # subscribers see every row
    assert runlog.read_csv(out / "metrics.csv")[-1]["env_steps"] == "200"
    assert (out / "checkpoint.msgpack").exists()
    with pytest.raises(InvalidInput, match="already holds a run"):
        run(TINY.replace(out=str(out)))


class Collect:
    """A subscriber: any object with ``rows(rows)``."""

    def __init__(self):
        self.seen = []

    def rows(self, rows):
        self.seen += rows


# --- rows by env steps or by time ------------------------------------------------------------

def test_rows_close_by_env_steps_or_by_time():
    rs = [rec(0, 10, 0.1, 1, 5.0, 1), rec(0, 20, 0.2, 2), rec(0, 30, 2.5, 3, 7.0, 1),
          rec(0, 40, 2.6, 4), rec(0, 110, 2.7, 5, 9.0, 1)]
    by_steps = binning.bin_records(binning.RowBuilder("a3c", 0, 100, 0.0), rs)
    assert [r["env_steps"] for r in by_steps] == [40, 110]
    assert by_steps[0]["episode_return"] == 6.0 and by_steps[0]["episodes"] == 2
    by_time = binning.bin_records(binning.RowBuilder("a3c", 0, 100, 2.0), rs)
    assert [r["env_steps"] for r in by_time] == [20, 40, 110]   # 2.5 s >= 0.1 s + 2 s
    assert [r["episode_return"] for r in by_time][:2] == [5.0, 7.0]


def test_every_driver_builds_its_row_from_the_same_sums():
    from a3c_jax.shell import synchronous

    row = curves.metrics_row("a3c", 3, 40, 2.5, curves.RowSums(
        4, 2.0, 12.0, 1.0, 2.0, 0.4, 3.0, 6.0, grad_norm=8.0, grad_norm_updates=4,
        ev_count=10.0, ev_return=20.0, ev_return_sq=60.0, ev_error=0.0, ev_error_sq=10.0))
    sigma = row.pop("sigma")
    assert row == {"algo": "a3c", "seed": 3, "env_steps": 40, "wall_time_s": 2.5,
                   "episode_return": 6.0, "episodes": 2, "policy_loss": 0.25,
                   "value_loss": 0.5, "entropy": 0.1, "total_loss": 0.75, "staleness": 1.5,
                   "grad_norm": 2.0, "explained_variance": 0.5}
    assert sigma != sigma   # NaN: no update had one (a categorical policy)
    # eval_return is added only to the rows an evaluation is shown at
    assert tuple(row) + ("sigma", "eval_return") == curves.METRIC_COLUMNS
    none = curves.metrics_row("a2c", 0, 8, 0.1, curves.RowSums(2, 0.0, 0.0, 1, 1, 1, 1))
    assert none["episodes"] == 0 and none["staleness"] == 0.0
    assert none["episode_return"] != none["episode_return"]   # NaN without an episode
    # four asynchronous records and the synchronous driver's sums of the same four updates
    rs = [rec(0, 10, 0.1, 1, 5.0, 1), rec(0, 20, 0.2, 2), rec(0, 30, 2.5, 3, 7.0, 1),
          rec(0, 40, 2.6, 4)]
    async_row = binning.bin_records(binning.RowBuilder("a2c", 0, 100), rs)[0]
    tot = synchronous.Totals(*(np.array([v]) for v in (4, 2, 12.0, 4.0, 8.0, 2.0, 12.0,
                                                      16.0, 2.0, 4, 4,
                                                      20.0, 40.0, 120.0, 0.0, 10.0)))
    assert synchronous.seed_row("a2c", 0, tot, 0, 40, 2.6) == async_row
    assert async_row["grad_norm"] == 4.0 and async_row["sigma"] == 0.5
    assert async_row["explained_variance"] == 0.75


def test_a_row_averages_each_signal_over_the_updates_that_have_one():
    """A NaN signal leaves that update out of the row's mean instead of blanking the row; a
    row where no update has one is NaN. The explained variance pools the steps of every
    update: an update that scored no step adds nothing."""
    nan = float("nan")
    none = dict(ev_count=0.0, ev_return=0.0, ev_return_sq=0.0, ev_error=0.0, ev_error_sq=0.0)
    rs = [rec(0, 10, 0.1, 1)._replace(grad_norm=nan, sigma=nan, **none),
          rec(0, 20, 0.2, 2)._replace(sigma=nan)]
    row = binning.bin_records(binning.RowBuilder("a3c", 0, 100), rs)[0]
    assert row["explained_variance"] == 0.75 and row["grad_norm"] == 4.0
    assert row["sigma"] != row["sigma"]
    row = binning.bin_records(binning.RowBuilder("nq", 0, 100), [rs[0]])[0]
    assert row["explained_variance"] != row["explained_variance"]   # no V: NaN


def test_explained_variance_pools_the_steps_of_a_rows_updates():
    """Two A3C-like updates, each with returns that barely vary (G = 1, 1 and 9, 9) and V off
    by 1 on each step: on its own an update has nothing to explain (NaN; a per-update ratio
    would be huge and negative with any noise), pooled V explains most of the row's
    variance: Var[G] = 16, Var[G - V] = 1."""
    def moments(g, v):
        g, v = np.asarray(g, float), np.asarray(v, float)
        return dict(ev_count=float(g.size), ev_return=g.sum(), ev_return_sq=(g * g).sum(),
                    ev_error=(g - v).sum(), ev_error_sq=((g - v) ** 2).sum())

    a, b = moments([1, 1], [0, 2]), moments([9, 9], [8, 10])
    assert np.isnan(curves.explained_variance(*a.values()))
    rs = [rec(0, 10, 0.1, 1)._replace(**a), rec(0, 20, 0.2, 2)._replace(**b)]
    row = binning.bin_records(binning.RowBuilder("a3c", 0, 100), rs)[0]
    assert row["explained_variance"] == pytest.approx(1 - 1 / 16)


def test_worker_merge_gives_the_complete_prefix_in_env_step_order():
    per = [[], []]
    merge = binning.WorkerMerge(per)
    per[0] += [rec(0, 10, 0.1, 1), rec(0, 30, 0.3, 3)]
    assert [r.env_steps for r in merge.take()] == [10, 30]
    assert merge.ordered() == []            # worker 1 may still report a step below 10
    per[1].append(rec(1, 20, 0.2, 2))
    assert [r.env_steps for r in merge.take()] == [20]
    assert [r.env_steps for r in merge.ordered()] == [10, 20]   # 30 waits for worker 1
    assert [r.env_steps for r in merge.ordered(final=True)] == [30]


@pytest.mark.parametrize("held", [list, binning.RecordLog])
def test_streamed_rows_equal_rows_binned_afterwards(held):
    rng = random.Random(0)
    per = [held(), held(), held()]
    order = []
    for v, t in enumerate(range(5, 3000, 5), start=1):   # claims interleave over workers
        w = rng.randrange(3)
        order.append(rec(w, t, t / 100 + rng.random() * 0.01, v, rng.random(), rng.random()))
    cfg = Config(algo="a3c", log_interval=100, log_seconds=0.5)
    offline = records.rows_from_records(cfg, 0, order)
    got = []
    streamed = binning.StreamBinner(per, records.row_builder(cfg, 0), got.extend)
    queues = [[r for r in order if r.worker == w] for w in range(3)]
    while any(queues):   # each worker reports in its own order, workers in random order
        w = rng.choice([w for w in range(3) if queues[w]])
        k = rng.randrange(1, 4)
        per[w] += queues[w][:k]
        queues[w] = queues[w][k:]
        streamed.poll()
    streamed.finish()
    assert got == offline and len(offline) > 30   # 30 intervals, split by the 0.5 s rule
    assert sum(len(rs) for rs in per) == len(order) == streamed.tally.count
    assert streamed.tally.staleness() == records.staleness_summary(order)
    if held is binning.RecordLog:   # what every reader has taken is forgotten
        assert [list(rs) for rs in per] == [[], [], []]


def test_a_record_log_keeps_what_a_slower_reader_has_not_taken():
    log = binning.RecordLog()
    fast, slow = object(), object()
    log.register(fast)
    log.register(slow)
    log += [1, 2, 3]
    assert log.read(fast) == [1, 2, 3] and list(log) == [1, 2, 3]   # slow has not read
    log.append(4)
    assert log.read(slow) == [1, 2, 3, 4] and list(log) == [4]
    assert log.read(fast) == [4] and list(log) == [] and len(log) == 4
    assert log.read(slow) == []


def test_a_run_with_a_directory_streams_its_updates_to_disk_only(tmp_path):
    res = run(Config(algo="a3c", workers=2, total_steps=3_000, seeds=(1, 0), hidden=(8,),
                     progress=False, out=str(tmp_path / "r")))
    assert res.kept_updates is None            # nothing held in memory while it trained
    rows = res.update_rows                     # read back from updates.csv, in its order
    assert len(rows) * 5 == 2 * 3_000 and {r["seed"] for r in rows} == {0, 1}
    keys = [(r["seed"] == 0, r["version_written"]) for r in rows]   # seeds as configured
    assert keys == sorted(keys)
    assert runlog.read_csv(tmp_path / "r" / "updates.csv")[0]["seed"] == "1"


def test_sort_csv_lines_moves_lines_as_they_are(tmp_path):
    p = tmp_path / "u.csv"
    p.write_bytes(b"seed,v,x\n0,3,1.50\n0,1,2e-05\n1,2,\n")
    runlog.sort_csv_lines(p, lambda f: int(f["v"]))
    assert p.read_bytes() == b"seed,v,x\n0,1,2e-05\n1,2,\n0,3,1.50\n"


def test_csv_appender_appends_whole_lines_and_repair_cuts_a_torn_one(tmp_path):
    app = rowsink.CsvAppender(tmp_path, flush_s=3600)
    app.rows([{"algo": "a2c", "seed": 0, "env_steps": 10}])
    app.updates([{"seed": 0, "worker": 1, "update": 0}])
    assert len(runlog.read_csv(tmp_path / "metrics.csv")) == 1
    assert not (tmp_path / "updates.csv").exists()          # update rows wait for a flush
    app.rows([{"algo": "a2c", "seed": 0, "env_steps": 20}])
    app.close()
    assert [r["env_steps"] for r in runlog.read_csv(tmp_path / "metrics.csv")] == ["10", "20"]
    assert runlog.read_csv(tmp_path / "updates.csv")[0]["worker"] == "1"
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("a2c,0,3")                                   # a write cut short
    rowsink.repair_csv(tmp_path / "metrics.csv")
    assert [r["env_steps"] for r in runlog.read_csv(tmp_path / "metrics.csv")] == ["10", "20"]


# --- signals ---------------------------------------------------------------------------------

def test_first_signal_is_recorded_and_a_second_exits_at_once():
    with signals.RunSignals() as sig:
        os.kill(os.getpid(), signal.SIGTERM)
        assert sig.received == signal.SIGTERM and sig.stop_requested
        with pytest.raises(signals.Interrupted):
            sig.check()
    code = ("import os, signal, time\n"
            "from a3c_jax.shell import signals\n"
            "with signals.RunSignals(on_second=lambda s: print('second', s, flush=True)):\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(30)\n"
            "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 130 and "second 2" in proc.stdout, proc
    assert "not reached" not in proc.stdout and "SIGINT again" in proc.stderr
    assert signals.exit_code(signal.SIGTERM) == 143 and signals.exit_code(None) == 130


def test_sync_rows_by_time_when_env_step_rows_are_far_apart():
    result = run(TINY.replace(total_steps=60_000, log_interval=60_000, log_seconds=0.05),
                 write=False)
    steps = [r["env_steps"] for r in result.rows]
    walls = [r["wall_time_s"] for r in result.rows]
    assert len(steps) > 2 and steps == sorted(set(steps)) and steps[-1] == 60_000
    assert all(b - a >= 0.05 for a, b in zip(walls[:-2], walls[1:-1]))   # by time, not sooner


def test_plot_runs_refuses_bad_input_before_writing(tmp_path, capsys):
    from a3c_jax.commands import plot_runs

    out = tmp_path / "plot"
    assert plot_runs.main(["--out", str(out)]) == 2
    assert plot_runs.main([str(tmp_path / "nothing"), "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as stat:
        plot_runs.main([str(tmp_path), "--stat", "median", "--out", str(out)])
    assert stat.value.code == 2
    err = capsys.readouterr().err
    assert "give at least one run directory" in err and "no metrics.csv" in err
    assert "median" in err and "Traceback" not in err
    assert not out.exists()


def test_a_failed_run_exits_1_and_run_json_holds_the_error(tmp_path, monkeypatch, capsys):
    from a3c_jax.commands import train
    from a3c_jax.drivers.asynchronous.store import SharedStore
    from a3c_jax.drivers.asynchronous.worker import AsyncWorker

    class Failing(SharedStore):
        def apply(self, grad, snap, local, t=None):
            if self.version >= 20:
                raise FloatingPointError("injected failure")
            return super().apply(grad, snap, local, t)

    real = AsyncWorker.make_store

    def failing_store(worker, seed):
        base = real(worker, seed)
        return Failing(base.params, base.opt, base.mode)

    monkeypatch.setattr(AsyncWorker, "make_store", failing_store)
    out = tmp_path / "run"
    assert train.main(["--algo", "a3c", "--hidden", "8", "--total-steps", "1000000", "--out",
                       str(out), "--no-progress"]) == 1
    assert "injected failure" in capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "FloatingPointError: injected failure" in info["error"]
    assert len(runlog.read_csv(out / "updates.csv")) >= 20   # what it gathered is kept


def test_multi_run_commands_check_every_run_directory_before_the_first_trains(tmp_path,
                                                                            capsys):
    from a3c_jax.commands import compare

    (tmp_path / "a2c").mkdir()
    (tmp_path / "a2c" / "config.json").write_text("{}")   # A2C's directory holds a run
    args = ["--out", str(tmp_path), "--total-steps", "2000", "--seeds", "0", "--no-progress"]
    assert compare.main(args) == 2                          # refused before A3C trained
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a2c"]


@pytest.mark.parametrize("field,value", [("log_seconds", -1.0), ("log_seconds", float("nan")),
                                         ("checkpoint_s", float("inf")), ("overwrite", "yes"),
                                         ("resume", 1)])
def test_validate_names_a_bad_run_option(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TINY.replace(**{field: value}).validate()


def test_resume_of_a_completed_run_says_so_and_trains_nothing(tmp_path, capsys):
    from a3c_jax.commands import train

    out = tmp_path / "run"
    run(TINY.replace(out=str(out)))
    before = (out / "metrics.csv").read_text()
    argv = ["--resume", "--out", str(out)]
    assert train.main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert (out / "metrics.csv").read_text() == before
    assert rundir.already_complete(TINY.replace(out=str(out), resume=True))
    assert not rundir.already_complete(
        TINY.replace(out=str(out), resume=True, total_steps=2 * TINY.total_steps))
