"""Tables, tests and figures for staleness studies (``emulated.sweep``) and for validating the
emulator against real threads. Side effects only in the ``plot_*`` functions (one PNG each,
saved atomically).

Env steps to a threshold are summarised per setting by the median over seeds with a
percentile-bootstrap interval (fixed rng); a seed that never reaches the threshold counts as
+inf, so the median is finite while more than half the seeds reach it, and an interval bound
that is inf reads "not reached within the budget". Two samples are compared with the
Mann-Whitney U test (two-sided; an unreached seed ranks above every reached one) and the
two-sample Kolmogorov-Smirnov test (scipy).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from matplotlib.ticker import FuncFormatter  # noqa: E402

from a3c_jax.analysis import runs, tables  # noqa: E402
from a3c_jax.shell.figure import save_figure  # noqa: E402

_K = FuncFormatter(lambda v, _: f"{v / 1e3:g}k" if v else "0")


def censored(steps) -> np.ndarray:
    """Env steps to the threshold per seed with NaN (never reached) as +inf."""
    x = np.asarray(steps, np.float64)
    return np.where(np.isfinite(x), x, np.inf)


def bootstrap_median(steps, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
                     ) -> tuple[float, float, float]:
    """(median, lo, hi) over seeds of ``steps`` (NaN = never reached = +inf)."""
    x = censored(steps)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    # the "lower" quantile keeps a bound on a resampled median exact: no interpolation
    # between a reached seed and an unreached one (+inf)
    est, lo, hi = runs.percentile_bootstrap(x, np.median, n_boot, ci, seed, method="lower")
    return float(est), float(lo), float(hi)


def compare(a, b) -> dict:
    """Medians of two samples of env steps to a threshold and two-sample tests."""
    from scipy import stats

    x, y = censored(a), censored(b)
    big = 10.0 * max(max(float(np.max(v[np.isfinite(v)], initial=0)) for v in (x, y)), 1.0)
    xf, yf = np.where(np.isfinite(x), x, big), np.where(np.isfinite(y), y, big)
    mw = stats.mannwhitneyu(xf, yf, alternative="two-sided")
    ks = stats.ks_2samp(xf, yf)
    return {"n_a": x.size, "n_b": y.size, "median_a": float(np.median(x)),
            "median_b": float(np.median(y)), "reached_a": int(np.isfinite(x).sum()),
            "reached_b": int(np.isfinite(y).sum()), "mannwhitney_u": float(mw.statistic),
            "mannwhitney_p": float(mw.pvalue), "ks_d": float(ks.statistic),
            "ks_p": float(ks.pvalue)}


def steps_table(samples: dict[str, Sequence[float]], extra: dict[str, dict] | None = None
                ) -> pd.DataFrame:
    """One row per label: seeds, reached, median env steps to the threshold [95% CI], mean
    over the seeds that reached it; ``extra[label]`` adds columns."""
    rows = []
    for label, steps in samples.items():
        x = censored(steps)
        med, lo, hi = bootstrap_median(x)
        fin = x[np.isfinite(x)]
        rows.append({"setting": label, "seeds": x.size, "reached": int(fin.size),
                     "median_steps": med, "ci_lo": lo, "ci_hi": hi,
                     "mean_steps_reached": float(fin.mean()) if fin.size else math.nan,
                     **(extra or {}).get(label, {})})
    return pd.DataFrame(rows)


def fmt_steps(v: float) -> str:
    if not np.isfinite(v):
        return "not reached"
    return f"{v / 1e3:.0f}k" if v < 1e6 else f"{v / 1e6:.2f}M"


def table_markdown(table: pd.DataFrame) -> str:
    """The table with steps as '166k [120k, 210k]'."""
    shown = table.copy()
    shown["median steps [95% CI]"] = [f"{fmt_steps(m)} [{fmt_steps(lo)}, {fmt_steps(hi)}]"
                                      for m, lo, hi in zip(table.median_steps, table.ci_lo,
                                                           table.ci_hi)]
    shown["reached"] = [f"{r}/{n}" for r, n in zip(table.reached, table.seeds)]
    shown = shown.drop(columns=["median_steps", "ci_lo", "ci_hi", "seeds",
                                "mean_steps_reached"])
    first = ["setting", "reached", "median steps [95% CI]"]
    shown = shown[first + [c for c in shown.columns if c not in first]]
    return tables.to_markdown(shown)


def _curve_band(env_steps: np.ndarray, smoothed: np.ndarray, points: int = 300):
    """Mean over seeds with a bootstrap band, where every seed has a value; downsampled."""
    idx = np.unique(np.linspace(0, env_steps.size - 1, min(points, env_steps.size)).astype(int))
    vals = smoothed[:, idx]
    full = np.isfinite(vals).all(axis=0)
    est = np.full(idx.size, np.nan)
    lo, hi = est.copy(), est.copy()
    if full.any():
        est[full], lo[full], hi[full] = runs.bootstrap_ci(vals[:, full])
    return env_steps[idx], est, lo, hi


def plot_sweep(env_steps: np.ndarray, smoothed: np.ndarray, labels: Sequence[str],
               table: pd.DataFrame, x: Sequence[float], x_label: str, threshold: float,
               path: str | os.PathLike, title: str = "") -> Path:
    """Left: smoothed return against env steps per setting (mean over seeds, 95% band).
    Right: median env steps to ``threshold`` against ``x`` (95% bootstrap CI)."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(labels)))
    for k, label in enumerate(labels):
        s, est, lo, hi = _curve_band(env_steps, smoothed[k])
        ax.plot(s, est, color=colors[k], label=label)
        ax.fill_between(s, lo, hi, color=colors[k], alpha=0.15)
    ax.axhline(threshold, color="grey", ls=":", lw=1)
    ax.set(xlabel="environment steps", ylabel="episode return (smoothed)")
    ax.legend(fontsize="small", ncol=2)
    med = table.median_steps.to_numpy(float)
    lo, hi = table.ci_lo.to_numpy(float), table.ci_hi.to_numpy(float)
    top = np.nanmax(np.where(np.isfinite(hi), hi, med)[np.isfinite(med)], initial=1.0) * 1.15
    shown = np.where(np.isfinite(med), med, np.nan)
    err = np.array([shown - lo, np.where(np.isfinite(hi), hi, top) - shown])
    bx.errorbar(np.asarray(x, float), shown, yerr=err, fmt="o-", capsize=3)
    for xi, m, r, n in zip(x, med, table.reached, table.seeds):
        bx.annotate(f"{r}/{n}", (xi, m if np.isfinite(m) else top), fontsize=7,
                    textcoords="offset points", xytext=(3, 5))
    bx.set(xlabel=x_label, ylabel=f"env steps to {threshold:g} (median, 95% CI)")
    ax.xaxis.set_major_formatter(_K)
    bx.yaxis.set_major_formatter(_K)
    if min(x) >= 0 and max(x) > 8:
        bx.set_xscale("symlog", linthresh=1)
        bx.set_xticks(list(x), [f"{v:g}" for v in x])
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_validation(samples: dict[str, Sequence[float]], trace: np.ndarray, threshold: float,
                    path: str | os.PathLike, title: str = "") -> Path:
    """Left: empirical CDF over seeds of env steps to ``threshold`` per label. Right: the
    staleness distribution of the replayed trace."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    for label, steps in samples.items():
        x = np.sort(censored(steps))
        n = x.size
        fin = x[np.isfinite(x)]
        ax.step(np.concatenate([fin[:1], fin]), np.arange(fin.size + 1) / n, where="post",
                label=f"{label} (median {fmt_steps(float(np.median(x)))})")
    ax.set(xlabel=f"env steps to {threshold:g} (smoothed return)",
           ylabel="fraction of seeds", ylim=(0, 1.02))
    ax.xaxis.set_major_formatter(_K)
    ax.legend(fontsize="small", loc="lower right")
    vals, counts = np.unique(np.asarray(trace), return_counts=True)
    bx.bar(vals, counts / counts.sum())
    bx.set(xlabel="staleness tau of an update", ylabel="fraction of updates",
           title=f"real trace: mean {np.mean(trace):.2f}")
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_speed(labels: Sequence[str], rates: Sequence[float], path: str | os.PathLike,
               title: str = "") -> Path:
    """Env steps per second per setting, as horizontal bars with their values."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.2))
    y = np.arange(len(labels))[::-1]
    ax.barh(y, rates, color="tab:blue")
    for yi, r in zip(y, rates):
        ax.annotate(f"{r / 1e3:,.0f}k", (r, yi), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xscale("log")
    ax.set(xlabel="env steps per second (log scale)", title=title)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return save_figure(fig, path)
