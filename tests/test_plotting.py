"""analysis, tables and plotting: tidy tables of runs of both algorithms, seed aggregates with
bootstrap bands, the summary and speedup tables, the figures and the summary files.

One tiny A2C run is trained once and copied; the copy's config.json is relabelled a3c
(W=2, E=1), which is all ``load_runs`` reads to tell the algorithms apart.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.core import curves
from a3c_jax.shell import files as runlog
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run

SEEDS = (0, 1, 2)
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    config = Config(algo="a2c", num_envs=2, total_steps=4000, seeds=SEEDS, progress=False,
                    out=str(root / "a2c"))
    run(config)
    shutil.copytree(root / "a2c", root / "a3c")
    path = root / "a3c" / "config.json"
    data = json.loads(path.read_text())
    data.update(algo="a3c", workers=2, envs_per_worker=1, backend="threads")  # a2c records sync
    path.write_text(json.dumps(data))
    return root


@pytest.fixture(scope="module")
def df(runs):
    return analysis.load_runs([runs / "a3c", runs / "a2c"])


def test_load_runs_reads_both_algorithms_into_one_tidy_table(runs, df):
    n_rows = sum(len(runlog.read_csv(runs / d / "metrics.csv")) for d in ("a3c", "a2c"))
    assert len(df) == n_rows
    for col in curves.METRIC_COLUMNS + ("run", "algo", "env", "workers", "envs_per_worker",
                                        "num_envs", "lr", "method", "total_envs"):
        assert col in df.columns, col
    assert set(df["algo"]) == {"a2c", "a3c"}
    assert set(df["run"]) == {"a2c", "a3c"}
    assert set(df["method"]) == {"a2c N=2", "a3c W=2 E=1"}
    assert (df["total_envs"] == 2).all()
    lr = json.loads((runs / "a2c" / "config.json").read_text())["lr"]   # resolved by the runner
    assert (df["env"] == "CartPole-v1").all() and np.allclose(df["lr"], lr)
    assert set(df["seed"]) == set(SEEDS)


def test_load_runs_labels_override_method(runs):
    df = analysis.load_runs([runs / "a2c"], labels=["baseline"])
    assert set(df["method"]) == {"baseline"}
    with pytest.raises(ValueError, match="labels"):
        analysis.load_runs([runs / "a2c"], labels=["a", "b"])


def test_smoothed_matches_runlog_per_seed(df):
    sm = analysis.smoothed(df, window_steps=200)
    g = sm[(sm["run"] == "a2c") & (sm["seed"] == 1)].sort_values("env_steps")
    want = curves.smoothed_returns(g["env_steps"].to_numpy(), g["episode_return"].to_numpy(),
                                   g["episodes"].to_numpy(), 200)
    np.testing.assert_allclose(g["smoothed"].to_numpy(), want, equal_nan=True)


def test_interpolate_puts_every_seed_on_one_grid(df):
    for x in ("env_steps", "wall_time_s"):
        curves = analysis.interpolate(df, x=x, num=50)
        for _, g in curves.groupby("method"):
            grids = [c[x].to_numpy() for _, c in g.groupby(["run_dir", "seed"])]
            assert len(grids) == len(SEEDS)
            assert all(np.array_equal(grids[0], gr) for gr in grids)
            assert len(grids[0]) == 50
        agg = analysis.aggregate_curves(curves, x=x)
        ok = agg["estimate"].notna()
        assert ok.mean() > 0.9
        assert (agg.loc[ok, "lo"] <= agg.loc[ok, "estimate"] + 1e-9).all()
        assert (agg.loc[ok, "estimate"] <= agg.loc[ok, "hi"] + 1e-9).all()


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).normal(100.0, 20.0, size=(5, 30))
    est, lo, hi = analysis.bootstrap_ci(values, "mean", n_boot=500)
    np.testing.assert_allclose(est, values.mean(axis=0))
    assert np.all(lo <= est) and np.all(est <= hi) and np.all(lo < hi)
    again = analysis.bootstrap_ci(values, "mean", n_boot=500)
    np.testing.assert_array_equal(lo, again[1])
    np.testing.assert_array_equal(hi, again[2])
    est1, lo1, hi1 = analysis.bootstrap_ci(values[:1], "mean")
    np.testing.assert_array_equal(est1, lo1)
    np.testing.assert_array_equal(est1, hi1)


def test_iqm_trims_a_quarter_each_side():
    est, lo, hi = analysis.bootstrap_ci(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), "iqm")
    assert est == pytest.approx(3.0)
    assert lo <= est <= hi
    with pytest.raises(ValueError, match="stat"):
        analysis.bootstrap_ci(np.ones(3), "median")


def test_final_return_hand_computed():
    steps = np.array([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    ret = np.array([1, 1, 1, 1, 1, 1, 1, 1, 10.0, 20.0])
    eps = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 3])
    assert curves.final_return(steps, ret, eps, frac=0.2) == pytest.approx((10 + 60) / 4)
    assert curves.final_return(steps, ret, eps, frac=0.0) == pytest.approx(20.0)
    assert np.isnan(curves.final_return(steps, ret, np.zeros(10), frac=0.5))


def test_thresholds_hand_computed():
    steps = np.arange(1, 11) * 100.0
    df = pd.DataFrame({"algo": "a2c", "seed": 0, "env_steps": steps, "wall_time_s": steps / 50,
                       "episode_return": steps / 10, "episodes": 1, "staleness": 0.0,
                       "run": "r", "method": "m", "env": "CartPole-v1", "workers": 2,
                       "envs_per_worker": 1, "num_envs": 4, "total_envs": 4, "lr": 1e-3,
                       "total_steps": 1000})
    df = analysis.smoothed(df, window_steps=1)   # window of one row: smoothed == raw
    table = tables.summary_table(df, threshold=55.0)
    row = table.iloc[0]
    assert row["steps_to_threshold"] == 600 and row["seconds_to_threshold"] == 12
    assert row["reached"] == 1 and row["env_steps_per_s"] == pytest.approx(50.0)
    assert np.isnan(tables.summary_table(df, threshold=1e9).iloc[0]["steps_to_threshold"])


def test_shell_and_tables_read_the_same_threshold_and_final_return():
    """One copy of each curve statistic: the run's summary line (shell), the tables (analysis)
    and ``curves`` agree on the same rows, blank cells (a CSV's) included."""
    from a3c_jax.shell import progress

    steps = np.arange(1, 11) * 100.0
    ret = [1.0, "", 30.0, 20.0, 60.0, "", 70.0, 80.0, 90.0, 5.0]
    eps = [1, 0, 2, 1, 1, "", 1, 1, 1, 3]
    rows = [{"seed": 0, "env_steps": s, "wall_time_s": s / 50, "episode_return": r,
             "episodes": e} for s, r, e in zip(steps, ret, eps)]
    df = pd.DataFrame({"algo": "a2c", "seed": 0, "env_steps": steps, "wall_time_s": steps / 50,
                       "episode_return": pd.to_numeric(pd.Series(ret), errors="coerce"),
                       "episodes": pd.to_numeric(pd.Series(eps), errors="coerce"),
                       "staleness": 0.0, "run": "r", "method": "m", "lr": 1e-3,
                       "total_steps": 1000})
    df = analysis.smoothed(df, window_steps=250)
    seed = tables.per_seed(df, threshold=50.0).iloc[0]
    # window of 250 steps: smoothed 1, 1, 20.3, 26.7, 35, 40, 65, 75, 80, 37 -> 50 at 700
    assert progress.threshold_hit(rows[::-1], 50.0, 250) == (700.0, pytest.approx(14.0))
    assert seed["steps_to_threshold"] == 700 and seed["seconds_to_threshold"] == 14
    # the last 20% of 1000 steps: rows at 900 and 1000 -> (90 + 3 * 5) / 4
    assert curves.final_return(*curves.row_arrays(rows[::-1]), frac=0.2) == 105 / 4
    assert seed["final_return"] == pytest.approx(curves.final_return(
        *curves.row_arrays(rows)))
    assert curves.threshold_index(np.array([np.nan, 1.0, 3.0, 2.0]), 2.0) == 2
    assert curves.threshold_index(np.array([np.nan, 1.0]), 2.0) is None


def test_steps_median_bootstrap_counts_unreached_seeds_as_inf(tmp_path):
    from a3c_jax.analysis import staleness

    steps = [100.0, 200.0, np.nan, 300.0, np.nan]
    med, lo, hi = staleness.bootstrap_median(steps, n_boot=500)
    assert med == 300.0 and lo <= med and hi == np.inf
    assert staleness.bootstrap_median(steps, n_boot=500) == (med, lo, hi)   # fixed rng
    assert staleness.bootstrap_median([7.0]) == (7.0, 7.0, 7.0)
    assert all(np.isnan(staleness.bootstrap_median([])))
    # the same resampling as the analysis bands: one bootstrap, two statistics
    x = np.array([1.0, 5.0, 2.0, 8.0, 3.0])
    est, blo, bhi = analysis.percentile_bootstrap(x, np.median, 300, method="lower")
    assert staleness.bootstrap_median(x, n_boot=300) == (est, blo, bhi)
    np.testing.assert_array_equal(analysis.bootstrap_ci(x, "mean", 300),
                                  analysis.percentile_bootstrap(x, np.mean, 300))
    png = staleness.plot_speed(["W=1", "W=2"], [1e3, 2e3], tmp_path / "speed.png")
    assert png.read_bytes()[:4] == PNG


def test_comparison_figure_and_summary_files(df, tmp_path):
    fig = plotting.plot_comparison(df, tmp_path / "comparison.png", threshold=30,
                                   n_boot=200)
    assert fig.read_bytes()[:4] == PNG
    fig_iqm = plotting.plot_comparison(df, tmp_path / "iqm.png", stat="iqm", n_boot=200)
    assert fig_iqm.read_bytes()[:4] == PNG
    table = tables.summary_table(df, threshold=30)
    assert list(table.columns) == list(tables.SUMMARY_COLUMNS)
    assert set(table["method"]) == {"a2c N=2", "a3c W=2 E=1"}
    assert (table["seeds"] == len(SEEDS)).all()
    assert (table["final_return_lo"] <= table["final_return"]).all()
    assert (table["final_return"] <= table["final_return_hi"]).all()
    csv_path, md_path = tables.write_summary(table, tmp_path)
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(tables.SUMMARY_COLUMNS) and len(back) == 2
    md = md_path.read_text()
    assert "a3c W=2 E=1" in md and "a2c N=2" in md and "final return" in md
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_lr_scatter_and_scaling_plots(df, tmp_path):
    sweep = pd.DataFrame({"algo": ["a2c", "a2c", "a3c"], "lr": [1e-4, 1e-3, 1e-3],
                          "seed": [0, 0, 0], "final_return": [20.0, 50.0, 40.0]})
    assert plotting.plot_lr_scatter(sweep, tmp_path / "lr.png").read_bytes()[:4] == PNG
    assert plotting.plot_lr_scatter(df, tmp_path / "lr2.png").read_bytes()[:4] == PNG
    table = pd.DataFrame({"algo": ["a3c", "a3c", "a3c"], "method": ["w1", "w2", "w4"],
                          "total_envs": [1, 2, 4], "seconds_to_threshold": [8.0, 4.0, 2.5],
                          "env_steps_per_s": [100.0, 180.0, 200.0],
                          "steps_to_threshold": [800.0, 800.0, 1000.0]})
    scaled = tables.scaling_table(table)
    np.testing.assert_allclose(scaled["speedup"], [1.0, 2.0, 3.2])
    np.testing.assert_allclose(scaled["throughput_speedup"], [1.0, 1.8, 2.0])
    np.testing.assert_allclose(scaled["steps_ratio"], [1.0, 1.0, 0.8])
    assert plotting.plot_scaling(table, tmp_path / "s.png").read_bytes()[:4] == PNG


def test_plot_run_still_written_by_the_runner(runs):
    assert (runs / "a2c" / "returns.png").read_bytes()[:4] == PNG


def _figures(monkeypatch) -> list:
    """Keep the figures ``plotting`` would save, open, instead of saving them."""
    figs = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figs.append(fig) or fig)
    return figs


def test_comparison_labels_one_seed_and_the_threshold(df, monkeypatch):
    figs = _figures(monkeypatch)
    plotting.plot_comparison(df[df["seed"] == 0], "unused.png", threshold=30, n_boot=50)
    fig = figs[-1]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "threshold 30" in legend
    assert all("1 seeds" not in t for t in legend) and any("(1 seed)" in t for t in legend)
    assert "1 seed" in fig._suptitle.get_text() and "1 seeds" not in fig._suptitle.get_text()
    plotting.plot_comparison(df, "unused.png", n_boot=50)
    assert f"{len(SEEDS)} seeds" in figs[-1]._suptitle.get_text()
    assert all(not t.get_text().startswith("threshold")
               for t in figs[-1].axes[0].get_legend().get_texts())


@pytest.mark.parametrize("lrs", [[3e-4, 3.2e-4], [1e-4, 3e-4, 1e-3, 1e-2], [2e-6, 0.5],
                                 [5e-3]])
def test_lr_scatter_has_plain_non_overlapping_log_ticks(lrs, monkeypatch):
    figs = _figures(monkeypatch)
    sweep = pd.DataFrame({"algo": "a2c", "lr": lrs, "seed": 0, "final_return": 1.0})
    plotting.plot_lr_scatter(sweep, "unused.png")
    ax = figs[-1].axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 2 <= len(labels) <= 7
    assert all("$" not in t and "\\times" not in t and "×" not in t for t in labels), labels
    assert all(t for t in labels) and len(set(labels)) == len(labels)
    assert not any(t.get_text() for t in ax.get_xticklabels(minor=True))
    lo, hi = ax.get_xlim()
    assert lo <= min(lrs) and max(lrs) <= hi
    assert "(1 seed per learning rate)" in ax.get_title()


def test_lr_label_and_ticks():
    assert [plotting._lr_label(v) for v in (1e-4, 2.5e-3, 0.01, 3e-4)] == \
        ["1e-4", "2.5e-3", "1e-2", "3e-4"]
    assert plotting._log_ticks(1e-4, 1e-2) == pytest.approx(
        [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2])
    assert plotting._log_ticks(1.5e-5, 1.5e-3) == pytest.approx([2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
                                                                 1e-3])
    assert plotting._log_ticks(1e-7, 1.0) == pytest.approx([1e-7, 1e-5, 1e-3, 1e-1])
    assert plotting._log_ticks(2.1e-4, 2.9e-4) == pytest.approx(np.geomspace(2.1e-4, 2.9e-4, 3))
    assert plotting._log_ticks(2.4e-4, 4e-4) == pytest.approx([3e-4, 4e-4])


def test_lr_table_summarises_a_sweep():
    sweep = pd.DataFrame({"algo": ["a2c"] * 4 + ["a3c"] * 2,
                          "lr": [1e-4, 1e-4, 1e-3, 1e-3, 1e-4, 1e-3],
                          "seed": [0, 1, 0, 1, 0, 0],
                          "final_return": [10.0, 30.0, 100.0, 40.0, 50.0, 20.0]})
    table = tables.lr_table(sweep)
    assert list(table.columns) == list(tables.LR_COLUMNS)
    a2c, a3c = table.iloc[0], table.iloc[1]
    assert (a2c["algo"], a2c["runs"]) == ("a2c", 4)
    assert a2c["mean final return"] == pytest.approx(45.0)
    assert a2c["median final return"] == pytest.approx(35.0)
    assert a2c["max final return"] == 100.0 and a2c["best lr"] == "0.001"
    assert a3c["best lr"] == "0.0001"
    md = tables.to_markdown(table)
    assert md.splitlines()[0].startswith("| algo | runs | mean final return")
    assert "| a2c | 4 | 45 | 35 | 100 | 0.001 |" in md


def _lucky_curve(total_steps: int) -> pd.DataFrame:
    """One seed's rows every 2000 env steps to ``total_steps``: one episode per row of return
    20, one lucky episode of 500 at 6000 env steps, and 500 from 40k env steps on."""
    steps = np.arange(1, total_steps // 2000 + 1) * 2000.0
    ret = np.where(steps >= 40_000, 500.0, 20.0)
    ret[steps == 6000] = 500.0
    return pd.DataFrame({"algo": "a2c", "seed": 0, "env_steps": steps,
                         "wall_time_s": steps / 1000, "episode_return": ret, "episodes": 1,
                         "staleness": 0.0, "run": "r", "run_dir": "r", "method": "a2c",
                         "env": "CartPole-v1", "workers": 2, "envs_per_worker": 1,
                         "num_envs": 16, "total_envs": 16, "lr": 5e-3,
                         "total_steps": total_steps})


def test_steps_to_threshold_and_curve_do_not_depend_on_the_budget(monkeypatch, tmp_path):
    """The same run gives the same numbers in a 60k and a 300k table: the window is 10k env
    steps (``curves.SMOOTH_WINDOW``), not a fraction of the budget, so the lucky episode at
    6000 env steps is averaged with its neighbours whatever the budget."""
    short, long = _lucky_curve(60_000), _lucky_curve(300_000)
    rows = {n: tables.summary_table(df, threshold=475.0, n_boot=50).iloc[0]
            for n, df in (("short", short), ("long", long))}
    # window of 10k = 5 rows: (k 500 + (5 - k) 20) / 5 >= 475 needs k = 5, the row at 48k
    assert rows["short"]["steps_to_threshold"] == rows["long"]["steps_to_threshold"] == 48_000
    assert rows["short"]["window_steps"] == rows["long"]["window_steps"] == curves.SMOOTH_WINDOW
    sm_short = analysis.smoothed(short)["smoothed"].to_numpy()
    sm_long = analysis.smoothed(long)["smoothed"].to_numpy()
    np.testing.assert_array_equal(sm_short, sm_long[:len(sm_short)])
    # and said so: in the table's caption and in the figure's axis label
    assert "smoothed over 10k env steps" in tables.summary_markdown(
        tables.summary_table(short, threshold=475.0, n_boot=50))
    figs = _figures(monkeypatch)
    plotting.plot_comparison(short, "unused.png", n_boot=50)
    assert "smoothed over 10k env steps" in figs[-1].axes[0].get_ylabel()
    from a3c_jax.shell import figure

    monkeypatch.setattr(figure, "save_figure", lambda fig, path: figs.append(fig) or fig)
    figure.plot_run(short.to_dict("records"), "unused.png")
    assert len(figs) == 2 and "smoothed over 10k env steps" in figs[-1].axes[0].get_ylabel()


def test_window_text():
    assert curves.window_text(10_000) == "smoothed over 10k env steps"
    assert [curves.steps_text(n) for n in (500, 2500, 1_200_000)] == ["500", "2.5k", "1.2M"]
