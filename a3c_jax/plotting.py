"""Plots and tables of learning curves. Side effects only; everything reads metrics.csv rows.

``plot_run`` draws one run (the runner calls it). The rest compares runs: ``load_runs`` reads
run directories into one tidy table; curves are smoothed per (run, seed), interpolated onto a
common grid of env steps or wall-clock seconds, and aggregated over seeds (mean or IQM) with
percentile-bootstrap confidence bands (fixed rng); ``plot_comparison`` draws return against
env steps and against wall-clock seconds side by side; ``summary_table``/``write_summary`` give
final return, env steps and seconds to a threshold and throughput per method;
``plot_lr_scatter`` and ``plot_scaling`` draw the paper's robustness and speedup figures.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from a3c_jax import runlog  # noqa: E402


def _series(rows: Sequence[dict]):
    by_seed = defaultdict(list)
    for r in rows:
        by_seed[int(r["seed"])].append(r)
    for seed, rs in sorted(by_seed.items()):
        steps = np.array([float(r["env_steps"]) for r in rs])
        ret = np.array([float(r["episode_return"]) if r["episode_return"] not in ("", None)
                        else np.nan for r in rs])
        eps = np.array([float(r["episodes"]) for r in rs])
        yield seed, steps, ret, eps


def plot_run(rows: Sequence[dict], path: str | os.PathLike, title: str = "",
             window_frac: float = 0.02) -> Path:
    """Return against env steps, one smoothed line per seed; saved atomically as PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, steps, ret, eps in _series(rows):
        window = max(window_frac * steps.max(), 1.0)
        ax.plot(steps, runlog.smoothed_returns(steps, ret, eps, window), label=f"seed {seed}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (smoothed)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Comparing runs: tidy tables, seed aggregates with bootstrap bands, summary tables.
#
# Everything below works on the tidy DataFrame of ``load_runs`` (one row per metrics.csv row).
# Curves are smoothed per (run, seed) on the env-step axis, then interpolated onto a common grid
# of env steps or of wall-clock seconds, and aggregated over seeds only where every seed has a
# value, so a band never mixes seeds that stopped with seeds still running.
# ---------------------------------------------------------------------------------------------

RUN_COLUMNS = ("run", "run_dir", "method", "env", "workers", "envs_per_worker", "num_envs",
               "total_envs", "lr", "t_max", "total_steps")
STATS = ("mean", "iqm")
CURVE_KEY = ["run_dir", "seed"]  # one learning curve; run_dir, since run names may repeat


def _keyed(df: pd.DataFrame) -> pd.DataFrame:
    """Tables built by hand may lack ``run_dir``; fall back on ``run``."""
    if "run_dir" in df.columns:
        return df
    return df.assign(run_dir=df["run"] if "run" in df.columns else "run")


def method_label(config: dict) -> str:
    """A readable name for what a run trained: 'a3c W=2 E=1' or 'a2c N=2'."""
    algo = config["algo"]
    if algo == "a2c":
        return f"a2c N={config['num_envs']}"
    return f"{algo} W={config['workers']} E={config['envs_per_worker']}"


def total_envs(config: dict) -> int:
    """Environments stepped in parallel: N for a2c, W * E for the asynchronous methods."""
    if config["algo"] == "a2c":
        return int(config["num_envs"])
    return int(config["workers"]) * int(config["envs_per_worker"])


def load_runs(dirs: Sequence[str | os.PathLike], labels: Sequence[str] | None = None
              ) -> pd.DataFrame:
    """Read run directories into one tidy table: one row per metrics.csv row, plus columns from
    each run's config.json (``run`` is the directory name; ``method`` is ``labels[i]`` when
    given, else ``method_label``). ``algo`` is taken from config.json, so a run is what its
    config says it is."""
    dirs = [Path(d) for d in dirs]
    if labels is not None and len(labels) != len(dirs):
        raise ValueError(f"labels: {len(labels)} labels for {len(dirs)} run directories")
    frames = []
    for i, d in enumerate(dirs):
        with open(d / "config.json") as f:
            config = json.load(f)
        metrics = pd.read_csv(d / "metrics.csv")
        for col in runlog.METRIC_COLUMNS:
            if col not in metrics.columns:
                metrics[col] = np.nan
        metrics = metrics[list(runlog.METRIC_COLUMNS)].copy()
        metrics["algo"] = config["algo"]
        metrics["run"] = d.name
        metrics["run_dir"] = str(d)
        metrics["method"] = labels[i] if labels is not None else method_label(config)
        for key in ("env", "workers", "envs_per_worker", "num_envs", "lr", "t_max",
                    "total_steps"):
            metrics[key] = config.get(key, np.nan)
        metrics["total_envs"] = total_envs(config)
        frames.append(metrics)
    if not frames:
        return pd.DataFrame(columns=list(runlog.METRIC_COLUMNS) + list(RUN_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    for col in ("env_steps", "wall_time_s", "episode_return", "episodes", "staleness"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["seed"] = df["seed"].astype(int)
    return df.sort_values(["run_dir", "seed", "env_steps"], kind="stable").reset_index(drop=True)


def smoothed(df: pd.DataFrame, window_frac: float = 0.02, window_steps: float | None = None
             ) -> pd.DataFrame:
    """A copy of ``df`` with a ``smoothed`` column: runlog.smoothed_returns per (run, seed),
    over a trailing window of ``window_steps`` env steps (default ``window_frac`` of the run's
    total_steps)."""
    out = _keyed(df).sort_values(CURVE_KEY + ["env_steps"], kind="stable").copy()
    out["smoothed"] = np.nan
    for _, g in out.groupby(CURVE_KEY, sort=False):
        total = float(g["total_steps"].iloc[0]) if "total_steps" in g else g["env_steps"].max()
        window = window_steps if window_steps is not None else max(window_frac * total, 1.0)
        out.loc[g.index, "smoothed"] = runlog.smoothed_returns(
            g["env_steps"].to_numpy(), g["episode_return"].to_numpy(),
            g["episodes"].fillna(0).to_numpy(), window)
    return out


def _with_smoothed(df: pd.DataFrame, window_frac: float) -> pd.DataFrame:
    return _keyed(df) if "smoothed" in df.columns else smoothed(df, window_frac)


def interpolate(df: pd.DataFrame, x: str = "env_steps", y: str = "smoothed",
                by: str = "method", num: int = 200, window_frac: float = 0.02) -> pd.DataFrame:
    """Interpolate every (run, seed) curve of ``y`` onto one grid of ``x`` per group ``by``.

    The grid of a group spans the range that every one of its curves covers (from the latest
    first point to the earliest last point), so aggregates never extrapolate a seed. Returns a
    tidy table with columns ``by, run, seed, x, y``; ``y`` is NaN before a curve's first finite
    value (no episode completed yet).
    """
    df = _with_smoothed(df, window_frac) if y == "smoothed" else _keyed(df)
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


def bootstrap_ci(values, stat: str = "mean", n_boot: int = 2000, ci: float = 0.95,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap over seeds (axis 0), with a fixed rng.

    ``values``: [num_seeds] or [num_seeds, num_points]. Returns (estimate, lo, hi), each of
    shape ``values.shape[1:]``. With one seed the band collapses onto the estimate.
    """
    values = np.asarray(values, np.float64)
    estimate = _stat(values, stat, axis=0)
    n = values.shape[0]
    if n < 2:
        return estimate, estimate.copy(), estimate.copy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boot = _stat(values[idx], stat, axis=1)            # [n_boot, ...]
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return estimate, lo, hi


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


def _save(fig, path: str | os.PathLike) -> Path:
    """Save a figure atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.png'}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


_X_LABELS = {"env_steps": "environment steps", "wall_time_s": "wall-clock seconds"}


def plot_comparison(df: pd.DataFrame, path: str | os.PathLike, stat: str = "mean",
                    by: str = "method", threshold: float | None = None, title: str | None = None,
                    num: int = 200, n_boot: int = 2000, ci: float = 0.95,
                    window_frac: float = 0.02) -> Path:
    """Two panels: smoothed return against env steps and against wall-clock seconds, one line
    (``stat`` over seeds) and a bootstrapped ``ci`` band per ``by`` group."""
    df = _with_smoothed(df, window_frac)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {m: f"C{i}" for i, m in enumerate(sorted(df[by].unique()))}
    for ax, x in zip(axes, ("env_steps", "wall_time_s")):
        agg = aggregate_curves(interpolate(df, x=x, by=by, num=num), x=x, by=by, stat=stat,
                               n_boot=n_boot, ci=ci)
        for label, g in agg.groupby(by, sort=True):
            n = int(g["n"].iloc[0])
            ax.plot(g[x], g["estimate"], color=colors[label], label=f"{label} ({n} seeds)")
            ax.fill_between(g[x], g["lo"], g["hi"], color=colors[label], alpha=0.25, lw=0)
        if threshold is not None:
            ax.axhline(threshold, color="0.5", ls="--", lw=0.8)
        ax.set_xlabel(_X_LABELS[x])
        ax.set_ylabel(f"episode return ({stat} over seeds, smoothed)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="best")
    env = ", ".join(sorted(map(str, df["env"].unique()))) if "env" in df else ""
    fig.suptitle(title or f"{env}: {stat} and {int(ci * 100)}% bootstrap CI over seeds")
    fig.tight_layout()
    return _save(fig, path)


def final_return(env_steps, episode_return, episodes, frac: float = 0.1) -> float:
    """Episode-weighted mean return over the last ``frac`` of a curve's env steps (at least the
    last row); NaN when no episode completed there."""
    env_steps = np.asarray(env_steps, np.float64)
    ret = np.nan_to_num(np.asarray(episode_return, np.float64))
    eps = np.nan_to_num(np.asarray(episodes, np.float64))
    if env_steps.size == 0:
        return float("nan")
    start = env_steps.max() * (1.0 - frac)
    sel = env_steps > start       # a row logs the steps that end at its env_steps
    sel[-1] = True
    n = eps[sel].sum()
    return float((ret[sel] * eps[sel]).sum() / n) if n > 0 else float("nan")


def per_seed(df: pd.DataFrame, threshold: float, by: str = "method", final_frac: float = 0.1,
             window_frac: float = 0.02) -> pd.DataFrame:
    """One row per (group, run, seed): final return, env steps and wall-clock seconds at which
    the smoothed return first reaches ``threshold`` (NaN if never), env steps per second."""
    df = _with_smoothed(df, window_frac)
    rows = []
    for (label, run_dir, seed), g in df.groupby([by] + CURVE_KEY, sort=True):
        g = g.sort_values("env_steps")
        sm = np.nan_to_num(g["smoothed"].to_numpy(np.float64), nan=-np.inf)
        hit = np.nonzero(sm >= threshold)[0]
        last = g.iloc[-1]
        wall = float(last["wall_time_s"])
        rows.append({
            by: label, "run": last.get("run", Path(run_dir).name), "run_dir": run_dir,
            "seed": int(seed), "algo": last["algo"], "lr": float(last["lr"]),
            "final_return": final_return(g["env_steps"], g["episode_return"], g["episodes"],
                                         final_frac),
            "steps_to_threshold": float(g["env_steps"].iloc[hit[0]]) if len(hit) else np.nan,
            "seconds_to_threshold": float(g["wall_time_s"].iloc[hit[0]]) if len(hit) else np.nan,
            "env_steps": float(last["env_steps"]), "wall_time_s": wall,
            "env_steps_per_s": float(last["env_steps"]) / wall if wall > 0 else np.nan,
            "staleness": float(np.nanmean(g["staleness"])) if g["staleness"].notna().any()
            else np.nan,
        })
    return pd.DataFrame(rows)


SUMMARY_COLUMNS = ("method", "algo", "env", "workers", "envs_per_worker", "total_envs", "lr",
                   "seeds", "final_return", "final_return_lo", "final_return_hi",
                   "threshold", "reached", "steps_to_threshold", "seconds_to_threshold",
                   "env_steps_per_s", "wall_time_s", "staleness")


def summary_table(df: pd.DataFrame, threshold: float = 475.0, stat: str = "mean",
                  by: str = "method", final_frac: float = 0.1, n_boot: int = 2000,
                  ci: float = 0.95, window_frac: float = 0.02) -> pd.DataFrame:
    """Per group: final return (``stat`` over seeds with a bootstrapped ``ci`` interval), how
    many seeds reached ``threshold`` (smoothed), mean env steps and wall-clock seconds to reach
    it over the seeds that did, env steps per second, total seconds and mean staleness.

    ``workers``/``envs_per_worker`` are blank for a2c (it has N = ``total_envs`` envs)."""
    seeds = per_seed(df, threshold, by, final_frac, window_frac)
    rows = []
    for label, g in seeds.groupby(by, sort=True):
        meta = df[df[by] == label].iloc[0]
        finals = g["final_return"].to_numpy(np.float64)
        finals = finals[np.isfinite(finals)]
        est, lo, hi = (bootstrap_ci(finals, stat, n_boot, ci) if finals.size
                       else (np.nan, np.nan, np.nan))
        sync = meta["algo"] == "a2c"
        rows.append({
            "method": label, "algo": meta["algo"], "env": meta["env"],
            "workers": np.nan if sync else int(meta["workers"]),
            "envs_per_worker": np.nan if sync else int(meta["envs_per_worker"]),
            "total_envs": int(meta["total_envs"]), "lr": float(meta["lr"]),
            "seeds": len(g), "final_return": float(est), "final_return_lo": float(lo),
            "final_return_hi": float(hi), "threshold": float(threshold),
            "reached": int(g["steps_to_threshold"].notna().sum()),
            "steps_to_threshold": float(g["steps_to_threshold"].mean()),
            "seconds_to_threshold": float(g["seconds_to_threshold"].mean()),
            "env_steps_per_s": float(g["env_steps_per_s"].mean()),
            "wall_time_s": float(g["wall_time_s"].mean()),
            "staleness": float(g["staleness"].mean()),
        })
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if by != "method":
        table = table.rename(columns={"method": by})
    return table


def _fmt_cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "—"
        if float(v).is_integer() and abs(v) < 1e15:
            return f"{int(v)}"
        return f"{v:.4g}" if abs(v) < 1e3 else f"{v:.0f}"
    return str(v)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no third-party dependency)."""
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_fmt_cell(row[c]) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary table as a human-readable markdown table with the CI folded in."""
    if "final_return" not in table.columns:
        return to_markdown(table)
    thr = _fmt_cell(float(table["threshold"].iloc[0])) if len(table) else "threshold"
    view = pd.DataFrame({
        table.columns[0]: table.iloc[:, 0],
        "seeds": table["seeds"],
        "final return [95% CI]": [
            f"{_fmt_cell(m)} [{_fmt_cell(lo)}, {_fmt_cell(hi)}]" for m, lo, hi in
            zip(table["final_return"], table["final_return_lo"], table["final_return_hi"])],
        f"seeds reaching {thr}": [f"{r}/{s}" for r, s in zip(table["reached"], table["seeds"])],
        f"env steps to {thr}": table["steps_to_threshold"],
        f"seconds to {thr}": table["seconds_to_threshold"],
        "env steps/s": table["env_steps_per_s"].round(0),
        "seconds": table["wall_time_s"],
        "staleness": table["staleness"],
    })
    return to_markdown(view)


def write_summary(table: pd.DataFrame, out_dir: str | os.PathLike, name: str = "summary"
                  ) -> tuple[Path, Path]:
    """Write ``{name}.csv`` (every column) and ``{name}.md`` (readable) atomically."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    runlog.atomic_write_text(csv_path, table.to_csv(index=False))
    note = ("Final return: mean episode return over the last 10% of env steps per seed, "
            "aggregated over seeds with a bootstrapped 95% CI. Steps and seconds to the "
            "threshold: first logged point where the smoothed return reaches it, averaged over "
            "the seeds that did (— if none). Seconds count from the end of compilation.\n")
    runlog.atomic_write_text(md_path, summary_markdown(table) + "\n" + note)
    return csv_path, md_path


def plot_lr_scatter(df: pd.DataFrame, path: str | os.PathLike, by: str | None = None,
                    title: str | None = None, final_frac: float = 0.1) -> Path:
    """Final return against learning rate (log x), one colour per method.

    ``df`` is either a tidy sweep table with ``lr`` and ``final_return`` columns (one row per
    run and seed), or a ``load_runs`` table, whose final returns are computed here."""
    if "final_return" not in df.columns:
        df = per_seed(df, threshold=np.inf, by="method", final_frac=final_frac)
    by = by or ("method" if "method" in df.columns else "algo")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, g) in enumerate(df.groupby(by, sort=True)):
        ax.scatter(g["lr"], g["final_return"], color=f"C{i}", label=str(label), alpha=0.75,
                   s=22)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final episode return")
    ax.set_title(title or "robustness to the learning rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def scaling_table(table: pd.DataFrame, x: str = "total_envs", group: str = "algo"
                  ) -> pd.DataFrame:
    """Add speedups relative to the smallest ``x`` within each ``group`` of a summary table:
    ``speedup`` (wall-clock seconds to the threshold; the paper's Table 2 measure),
    ``throughput_speedup`` (env steps per second) and ``steps_ratio`` (env steps to the
    threshold, > 1 means fewer steps than the baseline)."""
    parts = []
    for _, g in table.groupby(group, sort=True):
        g = g.sort_values(x).copy()
        base = g.iloc[0]
        g["speedup"] = base["seconds_to_threshold"] / g["seconds_to_threshold"]
        g["throughput_speedup"] = g["env_steps_per_s"] / base["env_steps_per_s"]
        g["steps_ratio"] = base["steps_to_threshold"] / g["steps_to_threshold"]
        parts.append(g)
    return pd.concat(parts, ignore_index=True) if parts else table.copy()


def plot_scaling(table: pd.DataFrame, path: str | os.PathLike, x: str = "total_envs",
                 group: str = "algo", title: str | None = None) -> Path:
    """Two panels against parallelism ``x``: speedup in wall-clock time to the threshold, and
    env steps per second; the dashed line is linear scaling."""
    if "speedup" not in table.columns:
        table = scaling_table(table, x, group)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (label, g) in enumerate(table.groupby(group, sort=True)):
        g = g.sort_values(x)
        axes[0].plot(g[x], g["speedup"], "o-", color=f"C{i}", label=f"{label}: time to score")
        axes[0].plot(g[x], g["throughput_speedup"], "s:", color=f"C{i}", alpha=0.7,
                     label=f"{label}: env steps/s")
        axes[1].plot(g[x], g["env_steps_per_s"], "o-", color=f"C{i}", label=str(label))
    xs = np.sort(table[x].unique()).astype(float)
    if xs.size:
        axes[0].plot(xs, xs / xs[0], "--", color="0.5", lw=0.8, label="linear")
    axes[0].set_ylabel("speedup relative to the smallest")
    axes[1].set_ylabel("env steps per second")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{int(v)}" for v in xs])
        ax.minorticks_off()
        ax.set_xlabel("workers x envs per worker (a3c) / envs (a2c)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle(title or "scaling with parallelism")
    fig.tight_layout()
    return _save(fig, path)
