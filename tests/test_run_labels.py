"""Which runs a3c-plot pools under one label, and the smoothing window its numbers read.

Run directories are written by hand (config.json from ``Config.to_dict``, a synthetic
metrics.csv), so nothing trains: a label names every option in which runs of one method
differ, runs pool only when their configs are equal apart from seeds and output options, a
seed never counts twice, --labels keeps its order, and uneven budgets are said aloud.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from a3c_jax.analysis import figures as plotting, labels as naming, runs as analysis, tables
from a3c_jax.commands import plot_runs
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config

STEPS = np.arange(1, 21) * 500.0   # 20 rows per seed, to 10k env steps


def write_run(path, seeds=(0, 1), steps=STEPS, **options):
    """A run directory: config.json of ``Config(**options)`` resolved (a2c, N=16 by default),
    as runs write it, and a metrics.csv whose return rises with the env steps, one episode per
    row."""
    config = resolve(Config(**{"algo": "a2c", "backend": "sync", "num_envs": 16, "seeds": seeds,
                       "total_steps": int(STEPS[-1]), "out": str(path), **options}))
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config.to_dict()))
    rows = [{"algo": config.algo, "seed": s, "env_steps": int(t), "wall_time_s": t / 1000,
             "episode_return": t / 50 + s, "episodes": 1, "policy_loss": 0.0,
             "value_loss": 0.0, "entropy": 0.0, "total_loss": 0.0, "staleness": 0.0}
            for s in seeds for t in steps]
    pd.DataFrame(rows).to_csv(path / "metrics.csv", index=False)
    return path


@pytest.fixture
def runs(tmp_path):
    """The runs of the report: default a2c, until-terminal a2c with --combine sum, a3c on
    threads and on processes (each seeds 0 and 1)."""
    return {
        "a2c16": write_run(tmp_path / "a2c16"),
        "a2c_ut_sum": write_run(tmp_path / "a2c_ut_sum", segments="until-terminal",
                                combine="sum"),
        "a3c_thr": write_run(tmp_path / "a3c_thr", algo="a3c", backend="threads"),
        "a3c_proc": write_run(tmp_path / "a3c_proc", algo="a3c", backend="processes"),
    }


def test_default_labels_name_every_option_that_differs(runs):
    df = analysis.load_runs(list(runs.values()))
    by_run = df.groupby("run")["method"].first().to_dict()
    assert by_run == {"a2c16": "a2c N=16 segments=fixed combine=step-mean",
                      "a2c_ut_sum": "a2c N=16 segments=until-terminal combine=sum",
                      "a3c_thr": "a3c W=2 E=1 backend=threads",
                      "a3c_proc": "a3c W=2 E=1 backend=processes"}
    table = tables.summary_table(df, threshold=100.0, n_boot=50)
    assert (table["seeds"] == 2).all()   # nothing pooled, nothing counted twice
    assert list(table["method"]) == [by_run[r] for r in runs]   # the order the runs came in


def test_lr_and_budget_differences_are_labelled_and_equal_configs_pool(tmp_path):
    a = write_run(tmp_path / "a", lr=1e-3)
    b = write_run(tmp_path / "b", lr=1e-3, seeds=(2,), out="elsewhere", progress=False,
                  log_interval=500)
    c = write_run(tmp_path / "c", lr=3e-4)
    assert naming.default_labels([json.loads((d / "config.json").read_text())
                                  for d in (a, b, c)]) == [
        "a2c N=16 lr=0.001", "a2c N=16 lr=0.001", "a2c N=16 lr=0.0003"]
    table = tables.summary_table(analysis.load_runs([a, b, c]), threshold=100.0, n_boot=50)
    assert list(table["method"]) == ["a2c N=16 lr=0.001", "a2c N=16 lr=0.0003"]
    assert list(table["seeds"]) == [3, 2]   # a and b pooled: output options aside, equal


def test_a_seed_in_two_pooled_runs_is_refused(tmp_path, capsys):
    a = write_run(tmp_path / "a")
    b = write_run(tmp_path / "b", seeds=(1, 2))
    with pytest.raises(ValueError, match="seed 1 is in both .*a and .*b"):
        analysis.load_runs([a, b])
    assert plot_runs.main([str(a), str(b), "--out", str(tmp_path / "plot")]) == 2
    err = capsys.readouterr().err
    assert "seed 1" in err and str(a) in err and str(b) in err
    assert not (tmp_path / "plot").exists()


def test_labels_may_not_pool_runs_whose_configs_differ(runs, tmp_path, capsys):
    argv = [str(runs["a2c16"]), str(runs["a2c_ut_sum"]), "--labels", "a2c", "a2c",
            "--out", str(tmp_path / "plot")]
    assert plot_runs.main(argv) == 2
    err = capsys.readouterr().err
    assert "'a2c'" in err and "segments" in err and "combine" in err
    assert not (tmp_path / "plot").exists()


def test_labels_keep_their_order_in_table_and_legend(runs, tmp_path, monkeypatch):
    df = analysis.load_runs([runs["a3c_thr"], runs["a2c16"]], labels=["zeta", "alpha"])
    assert list(tables.summary_table(df, threshold=100.0, n_boot=50)["method"]) == [
        "zeta", "alpha"]
    figs = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figs.append(fig) or fig)
    plotting.plot_comparison(df, "unused.png", n_boot=50)
    legend = [t.get_text() for t in figs[-1].axes[0].get_legend().get_texts()]
    assert [t.split(" (")[0] for t in legend] == ["zeta", "alpha"]


def test_uneven_budgets_are_said_not_silently_cut(tmp_path, capsys):
    full = write_run(tmp_path / "full")
    short = write_run(tmp_path / "short", seeds=(2,), steps=STEPS[:8])   # stopped at 4000
    out = tmp_path / "plot"
    assert plot_runs.main([str(full), str(short), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "warning:" in captured.err and "between 4000 and 10000 env steps" in captured.err
    md = (out / "summary.md").read_text()
    assert "4000-10000 (uneven)" in md and "Warning:" in md
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert (row["seeds"], row["env_steps_min"], row["env_steps_max"]) == (3, 4000, 10000)
    # even budgets: no warning
    assert plot_runs.main([str(full), "--out", str(tmp_path / "even")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_window_flag_is_used_and_stated(tmp_path, capsys):
    run = write_run(tmp_path / "a")
    out = tmp_path / "plot"
    assert plot_runs.main([str(run), "--window", "2500", "--out", str(out)]) == 0
    assert "smoothed over 2.5k env steps" in (out / "summary.md").read_text()
    assert pd.read_csv(out / "summary.csv").iloc[0]["window_steps"] == 2500
    assert plot_runs.main([str(run), "--window", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--window" in capsys.readouterr().err
