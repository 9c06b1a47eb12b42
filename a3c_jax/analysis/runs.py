"""Learning curves as data: run directories read into one tidy table, smoothing, a common grid,
seed aggregates with percentile-bootstrap bands (the one bootstrap of the analysis tools).

``load_runs`` reads run directories (config.json and metrics.csv) into one DataFrame, one row
per metrics.csv row. Curves are smoothed per (run, seed) on the env-step axis, then interpolated
onto a common grid of env steps or of wall-clock seconds, and aggregated over seeds (mean or
IQM) only where every seed has a value, so a band never mixes seeds that stopped with seeds
still running. The bootstrap uses a fixed rng, so tables and figures are reproducible. The
final return of a curve is ``curves.final_return`` (also importable from here). How runs are
named, and which may be pooled under one name, is ``labels``'.

Tables built from these (summaries, speedups) are in ``tables``; figures in ``plotting``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from a3c_jax.analysis import labels as naming
from a3c_jax.core import curves
from a3c_jax.core.curves import final_return  # noqa: F401 - the commands' name for it

RUN_COLUMNS = ("run", "run_dir", "run_index", "method", "env", "workers", "envs_per_worker",
               "num_envs", "total_envs", "lr", "t_max", "total_steps")
STATS = ("mean", "iqm")
CURVE_KEY = ["run_dir", "seed"]  # one learning curve; run_dir, since run names may repeat


def keyed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``run_dir`` column: tables built by hand may lack it; fall back on ``run``."""
    if "run_dir" in df.columns:
        return df
    return df.assign(run_dir=df["run"] if "run" in df.columns else "run")


def load_runs(dirs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None
              ) -> pd.DataFrame:
    """Read run directories into one tidy table: one row per metrics.csv row, plus columns from
    each run's config.json (``run`` is the directory name; ``run_index`` its position in
    ``dirs``, which orders the labels: ``label_order``; ``method`` is ``labels[i]`` when
    given, else ``labels.default_labels``). ``algo`` is taken from config.json, so a run is
    what its config says it is.

    ValueError when runs that share a label may not be pooled (``labels.check_pooling``:
    their configs differ beyond seeds and output options, or a seed is in two of them)."""
    dirs = [Path(d) for d in dirs]
    if labels is not None and len(labels) != len(dirs):
        raise ValueError(f"labels: {len(labels)} labels for {len(dirs)} run directories")
    configs = [json.loads((d / "config.json").read_text()) for d in dirs]
    labels = list(labels) if labels is not None else naming.default_labels(configs)
    frames = []
    for i, (d, config) in enumerate(zip(dirs, configs)):
        metrics = pd.read_csv(d / "metrics.csv")
        for col in curves.METRIC_COLUMNS:
            if col not in metrics.columns:
                metrics[col] = np.nan
        metrics = metrics[list(curves.METRIC_COLUMNS)].copy()
        metrics["algo"] = naming.run_label(config)
        metrics["run"] = d.name
        metrics["run_dir"] = str(d)
        metrics["run_index"] = i
        metrics["method"] = labels[i]
        for key in ("env", "workers", "envs_per_worker", "num_envs", "lr", "t_max",
                    "total_steps"):
            metrics[key] = config.get(key, np.nan)
        metrics["total_envs"] = naming.total_envs(config)
        frames.append(metrics)
    naming.check_pooling([str(d) for d in dirs], configs, labels,
                         [sorted(set(f["seed"].dropna().astype(int))) for f in frames])
    if not frames:
        return pd.DataFrame(columns=list(curves.METRIC_COLUMNS) + list(RUN_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    if "eval_return" not in df.columns:   # runs written before greedy evaluations
        df["eval_return"] = np.nan
    for col in ("env_steps", "wall_time_s", "episode_return", "episodes", "staleness",
                "eval_return"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["seed"] = df["seed"].astype(int)
    return df.sort_values(["run_dir", "seed", "env_steps"], kind="stable").reset_index(drop=True)


def label_order(df: pd.DataFrame, by: str = "method") -> list:
    """The groups of ``df[by]`` in the order legends and tables show them: by their first
    run's ``run_index`` (the order ``load_runs`` was given the runs and labels), else
    sorted."""
    if "run_index" not in df.columns:
        return sorted(df[by].unique())
    first = df.groupby(by, sort=True)["run_index"].min()
    return list(first.sort_values(kind="stable").index)


def curve_ends(df: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    """Per group: the env steps where its shortest and its longest curve (run, seed) end,
    columns ``env_steps_min, env_steps_max`` indexed by ``by``. The aggregate curve of a group
    stops where its shortest curve does (``interpolate``)."""
    ends = keyed(df).groupby([by] + CURVE_KEY, sort=True)["env_steps"].max()
    return ends.groupby(level=0).agg(env_steps_min="min", env_steps_max="max")


def smoothed(df: pd.DataFrame, window_steps: float = curves.SMOOTH_WINDOW) -> pd.DataFrame:
    """A copy of ``df`` with a ``smoothed`` column: curves.smoothed_returns per (run, seed),
    over a trailing window of ``window_steps`` env steps (the same whatever the run's budget,
    so a run's smoothed curve does not depend on what it is compared with)."""
    out = keyed(df).sort_values(CURVE_KEY + ["env_steps"], kind="stable").copy()
    out["smoothed"] = np.nan
    for _, g in out.groupby(CURVE_KEY, sort=False):
        out.loc[g.index, "smoothed"] = curves.smoothed_returns(
            g["env_steps"].to_numpy(), g["episode_return"].to_numpy(),
            g["episodes"].fillna(0).to_numpy(), window_steps)
    return out


def with_smoothed(df: pd.DataFrame, window_steps: float = curves.SMOOTH_WINDOW
                  ) -> pd.DataFrame:
    """``df`` itself if it already has a ``smoothed`` column, else ``smoothed(df,
    window_steps)``."""
    return keyed(df) if "smoothed" in df.columns else smoothed(df, window_steps)


def interpolate(df: pd.DataFrame, x: str = "env_steps", y: str = "smoothed",
                by: str = "method", num: int = 200,
                window_steps: float = curves.SMOOTH_WINDOW) -> pd.DataFrame:
    """Interpolate every (run, seed) curve of ``y`` onto one grid of ``x`` per group ``by``.

    The grid of a group spans the range that every one of its curves covers (from the latest
    first point to the earliest last point), so aggregates never extrapolate a seed. Returns a
    tidy table with columns ``by, run_dir, seed, x, y``; ``y`` is NaN before a curve's first
    finite value (no episode completed yet).
    """
    df = with_smoothed(df, window_steps) if y == "smoothed" else keyed(df)
    parts = []
    for label, g in df.groupby(by, sort=True):
        curves = [(key, c.sort_values(x)) for key, c in g.groupby(CURVE_KEY, sort=True)]
        lo = max(float(c[x].min()) for _, c in curves)
        hi = min(float(c[x].max()) for _, c in curves)
        grid = np.linspace(lo, hi, num) if hi > lo else np.array([hi])
        for (run_dir, seed), c in curves:
            xs, ys = c[x].to_numpy(np.float64), c[y].to_numpy(np.float64)
            ok = np.isfinite(xs) & np.isfinite(ys)
            if ok.any():
                vals = np.interp(grid, xs[ok], ys[ok], left=np.nan)
            else:
                vals = np.full(grid.shape, np.nan)
            parts.append(pd.DataFrame({by: label, "run_dir": run_dir, "seed": seed, x: grid,
                                       y: vals}))
    if not parts:
        return pd.DataFrame(columns=[by, "run_dir", "seed", x, y])
    return pd.concat(parts, ignore_index=True)


def _stat(values: np.ndarray, stat: str, axis: int) -> np.ndarray:
    """Mean, or interquartile mean (mean of the middle 50%, trimming floor(n/4) per side)."""
    if stat == "mean":
        return np.mean(values, axis=axis)
    if stat == "iqm":
        n = values.shape[axis]
        k = int(np.floor(0.25 * n))
        s = np.sort(values, axis=axis)
        return np.mean(np.take(s, np.arange(k, n - k), axis=axis), axis=axis)
    raise ValueError(f"stat must be one of {STATS}, got {stat!r}")


def percentile_bootstrap(values, statistic: Callable[[np.ndarray, int], np.ndarray],
                         n_boot: int = 2000, ci: float = 0.95, seed: int = 0,
                         method: str = "linear") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap over seeds (axis 0), with a fixed rng.

    ``values``: [num_seeds] or [num_seeds, num_points]; ``statistic(x, axis)`` reduces an axis
    of seeds. The estimate is the statistic of ``values``; (lo, hi) the ``(1 - ci) / 2`` and
    ``(1 + ci) / 2`` quantiles (numpy's quantile ``method``) of the statistic over ``n_boot``
    resamples of the seeds with replacement. Each has shape ``values.shape[1:]``; with one seed
    the band collapses onto the estimate.
    """
    values = np.asarray(values, np.float64)
    estimate = statistic(values, 0)
    n = values.shape[0]
    if n < 2:
        return estimate, estimate.copy(), estimate.copy()
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = statistic(values[idx], 1)                   # [n_boot, ...]
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0, method=method)
    return estimate, lo, hi


def bootstrap_ci(values, stat: str = "mean", n_boot: int = 2000, ci: float = 0.95,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``percentile_bootstrap`` of the mean or the IQM (``stat``, one of ``STATS``)."""
    return percentile_bootstrap(values, lambda x, axis: _stat(x, stat, axis), n_boot, ci, seed)


def aggregate_curves(curves: pd.DataFrame, x: str = "env_steps", y: str = "smoothed",
                     by: str = "method", stat: str = "mean", n_boot: int = 2000,
                     ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Aggregate interpolated curves over seeds: columns ``by, x, estimate, lo, hi, n``.
    Points where any seed has no value yet are NaN."""
    parts = []
    for label, g in curves.groupby(by, sort=True):
        wide = g.pivot(index=x, columns=CURVE_KEY, values=y)
        vals = wide.to_numpy(np.float64).T                 # [num_curves, num_points]
        est = np.full(vals.shape[1], np.nan)
        lo, hi = est.copy(), est.copy()
        full = np.all(np.isfinite(vals), axis=0)
        if full.any():
            est[full], lo[full], hi[full] = bootstrap_ci(vals[:, full], stat, n_boot, ci, seed)
        parts.append(pd.DataFrame({by: label, x: wide.index.to_numpy(), "estimate": est,
                                   "lo": lo, "hi": hi, "n": vals.shape[0]}))
    if not parts:
        return pd.DataFrame(columns=[by, x, "estimate", "lo", "hi", "n"])
    return pd.concat(parts, ignore_index=True)


def seeds_label(n: int) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} seed" if n == 1 else f"{n} seeds"
