"""Smoke tests of the experiment scripts at tiny budgets: each runs as a subprocess, exits 0 and
writes the files it promises, with the right columns.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from a3c_jax.config import defaults
from a3c_jax.analysis import tables

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"
ALGOS = ["a3c", "a2c"]
TINY = ["--total-steps", "3000", "--no-progress"]


def script(name: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(EXPERIMENTS / name), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, f"{name} exited {proc.returncode}\n{proc.stdout}\n" \
                                      f"{proc.stderr}"
    return proc


def load_module(name: str):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """One compare.py run (a2c only, the promised fallback before a3c), reused below."""
    out = tmp_path_factory.mktemp("compare")
    proc = script("compare.py", "--algos", "a2c", "--seeds", "0", "1", "--threshold", "20",
                  "--out", str(out), *TINY)
    return out, proc


def test_compare_a2c_only_writes_runs_figure_and_summary(compared):
    out, proc = compared
    run_dir = out / "a2c"
    for f in ("config.json", "metrics.csv", "params_seed0.msgpack", "params_seed1.msgpack"):
        assert (run_dir / f).exists(), f
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "a2c" and config["num_envs"] == 2 and not config["vmap_seeds"]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(out / "summary.csv")
    assert list(table.columns) == list(tables.SUMMARY_COLUMNS)
    assert table["method"].tolist() == ["a2c N=2"] and table["seeds"].tolist() == [2]
    assert "a2c N=2" in (out / "summary.md").read_text()
    assert f"figure: {out / 'comparison.png'}" in proc.stdout


def test_compare_both_algorithms_from_one_base_config(tmp_path):
    script("compare.py", "--seeds", "0", "--workers", "2", "--envs-per-worker", "2",
           "--out", str(tmp_path), *TINY)
    a3c = json.loads((tmp_path / "a3c" / "config.json").read_text())
    a2c = json.loads((tmp_path / "a2c" / "config.json").read_text())
    assert (a3c["algo"], a3c["workers"], a3c["envs_per_worker"]) == ("a3c", 2, 2)
    assert (a2c["algo"], a2c["num_envs"]) == ("a2c", 4)
    differ = {k for k in a3c if a3c[k] != a2c[k]}
    # lr is an auto field resolved per driver (config.json holds the resolved value): A2C
    # averages N t_max steps per update, A3C t_max E, so their defaults differ; a2c records
    # the driver it ran on as backend sync
    assert differ <= {"algo", "num_envs", "workers", "envs_per_worker", "out", "vmap_seeds", "lr",
                      "backend"}
    assert (a3c["backend"], a2c["backend"]) == ("threads", "sync")
    assert a3c["lr"] == defaults.AUTO_DEFAULTS["discrete_async"]["lr"]
    assert a2c["lr"] == defaults.AUTO_DEFAULTS["discrete"]["lr"]
    table = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(table["method"]) == ["a2c N=4", "a3c W=2 E=2"]
    assert (table["total_envs"] == 4).all()


def test_compare_rejects_an_invalid_config(tmp_path, capsys):
    compare = load_module("compare")
    assert compare.main(["--algos", "a2c", "--total-steps", "1", "--out", str(tmp_path)]) == 2
    assert "--total-steps" in capsys.readouterr().err
    assert not (tmp_path / "a2c").exists()


def test_lr_sweep_writes_tidy_csv_and_scatter(tmp_path):
    script("lr_sweep.py", "--num-lrs", "2", "--seeds", "0", "1", "--algos", *ALGOS,
           "--out", str(tmp_path), *TINY)
    df = pd.read_csv(tmp_path / "lr_sweep.csv")
    assert list(df.columns) == ["algo", "lr", "seed", "final_return"]
    assert sorted(df["algo"].unique()) == sorted(ALGOS)
    assert len(df) == 2 * 2 * len(ALGOS)
    assert df["lr"].between(1e-4, 1e-2).all() and df["lr"].nunique() == 2
    assert np.isfinite(df["final_return"]).all()
    assert (tmp_path / "lr_scatter.png").read_bytes()[:4] == b"\x89PNG"


def test_lr_sweep_vmaps_a_traced_learning_rate_exactly():
    import jax

    from a3c_jax.drivers.synchronous import make_train
    from a3c_jax.config.schema import Config

    lr_sweep = load_module("lr_sweep")
    lrs = lr_sweep.sample_lrs(12, 1e-4, 1e-2, seed=0)
    assert np.array_equal(lrs, lr_sweep.sample_lrs(12, 1e-4, 1e-2, seed=0))
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-2 and np.all(np.diff(lrs) > 0)
    config = Config(num_envs=2, total_steps=500, progress=False)
    lrs = np.array([3e-4, 5e-3], np.float32)
    m = make_train(config).train_grid([0, 1], lrs)     # [lrs, seeds, updates], one call
    # the second learning rate against a trainer built with it as a Python float
    ref = jax.device_get(make_train(config.replace(lr=float(lrs[1]))).train_seeds([0, 1])[1])
    np.testing.assert_allclose(m.total_loss[1], ref.total_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(m.episodes[1], ref.episodes)
    assert not np.allclose(m.total_loss[0], m.total_loss[1])


def test_scaling_writes_table_and_plot(tmp_path):
    proc = script("scaling.py", "--workers", "1", "2", "--algos", *ALGOS, "--threshold", "20",
                  "--seeds", "0", "1", "--out", str(tmp_path), *TINY)
    assert f"os.cpu_count() = {os.cpu_count()}" in proc.stdout
    table = pd.read_csv(tmp_path / "scaling.csv")
    for col in ("method", "family", "total_envs", "steps_to_threshold", "seconds_to_threshold",
                "speedup", "speedup_lo", "speedup_hi", "env_steps_per_s",
                "throughput_speedup", "throughput_speedup_lo", "throughput_speedup_hi"):
        assert col in table.columns, col
    assert sorted(table["family"].unique()) == ["a2c", "a3c threads"]
    assert len(table) == 2 * 2
    for _, g in table.groupby("family"):
        g = g.sort_values("total_envs")
        assert g["throughput_speedup"].iloc[0] == 1.0
        # two seeds: the interval holds the estimate, and the baseline's own ratio is
        # resampled against itself (an interval around 1)
        assert (g["throughput_speedup_lo"] <= g["throughput_speedup"] + 1e-9).all()
        assert (g["throughput_speedup"] <= g["throughput_speedup_hi"] + 1e-9).all()
        assert g["throughput_speedup_lo"].iloc[0] <= 1.0 <= g["throughput_speedup_hi"].iloc[0]
    md = (tmp_path / "scaling.md").read_text()
    assert "speedup" in md and "[" in md and "bootstrap" in md
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    for d in ["a3c_W1", "a3c_W2", "a2c_N1", "a2c_N2"]:
        assert (tmp_path / d / "metrics.csv").exists(), d


def test_scaling_keeps_each_backend_apart():
    from a3c_jax.commands import scaling

    out = Path("o")
    assert scaling.run_dir(out, "a3c", 4, 1) == out / "a3c_W4"
    assert scaling.run_dir(out, "a3c", 4, 1, "processes") == out / "a3c_processes_W4"
    assert scaling.run_dir(out, "a2c", 4, 2, "sync") == out / "a2c_N8"
    assert [scaling.family({"algo": a, "backend": b}) for a, b in
            [("a3c", "threads"), ("a3c", "processes"), ("a2c", "sync")]] == [
        "a3c threads", "a3c processes", "a2c"]


def test_speedup_intervals_bootstrap_each_side_over_seeds():
    seeds = pd.DataFrame({
        "method": ["w1"] * 4 + ["w2"] * 4,
        "seconds_to_threshold": [10.0, 10.0, 10.0, 10.0, 5.0, 5.0, 4.0, 6.0],
        "env_steps_per_s": [100.0, 100.0, 100.0, 100.0, 150.0, 150.0, 150.0, 150.0]})
    table = pd.DataFrame({"method": ["w1", "w2"], "algo": ["a3c", "a3c"], "total_envs": [1, 2],
                          "speedup": [1.0, 2.0], "throughput_speedup": [1.0, 1.5]})
    out = tables.speedup_intervals(seeds, table)
    w2 = out.set_index("method").loc["w2"]
    assert w2["throughput_speedup_lo"] == pytest.approx(1.5) == w2["throughput_speedup_hi"]
    assert 10 / 6 - 1e-9 <= w2["speedup_lo"] < 2.0 < w2["speedup_hi"] <= 10 / 4 + 1e-9


def _check_eval(path: Path, mode: str, episodes: int) -> None:
    report = json.loads(path.read_text())
    assert report["mode"] == mode and report["episodes"] == episodes
    assert set(report["seeds"]) == {"0", "1"}
    for r in report["seeds"].values():
        assert len(r["returns"]) == episodes
        assert r["mean"] == pytest.approx(np.mean(r["returns"]))
        assert r["unfinished"] == 0 and min(r["returns"]) >= 1
    assert report["mean"] == pytest.approx(
        np.mean([x for r in report["seeds"].values() for x in r["returns"]]))


def test_evaluate_writes_eval_json(compared):
    out, _ = compared
    proc = script("evaluate.py", str(out / "a2c"), "--episodes", "8")
    _check_eval(out / "a2c" / "eval.json", "greedy", 8)
    assert "return" in proc.stdout


def test_evaluate_sampled_and_missing_checkpoint_in_process(compared, tmp_path, capsys):
    out, _ = compared
    evaluate = load_module("evaluate")
    target = tmp_path / "sampled.json"
    assert evaluate.main([str(out / "a2c"), "--episodes", "6", "--mode", "sampled",
                          "--out", str(target)]) == 0
    _check_eval(target, "sampled", 6)
    assert evaluate.main([str(out / "a2c"), "--seeds", "7"]) == 2
    assert "no saved parameters" in capsys.readouterr().err


def test_plot_runs_compares_any_run_directories(compared, tmp_path, capsys):
    out, _ = compared
    plot_runs = load_module("plot_runs")
    fig = plot_runs.plot(plot_runs.Args(runs=(str(out / "a2c"),), labels=("baseline",),
                                        threshold=20.0, out=str(tmp_path)))
    assert fig.read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tmp_path / "summary.csv")
    assert table["method"].tolist() == ["baseline"] and table["seeds"].tolist() == [2]
    assert "baseline" in capsys.readouterr().out
    with pytest.raises(ValueError, match="labels"):
        plot_runs.plot(plot_runs.Args(runs=(str(out / "a2c"),), labels=("a", "b")))
    with pytest.raises(ValueError, match="no metrics.csv"):
        plot_runs.plot(plot_runs.Args(runs=(str(tmp_path / "nowhere"),)))
