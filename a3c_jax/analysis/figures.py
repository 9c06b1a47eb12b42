"""Figures of learning curves. Side effects only: each function saves one PNG atomically.

``plot_run`` draws one run from its metrics.csv rows (the runner calls it). The others compare
runs from the tidy table of ``analysis.load_runs``: ``plot_comparison`` draws return against env
steps and against wall-clock seconds side by side (seed aggregate with a bootstrap band, from
``analysis``); ``plot_lr_scatter`` and ``plot_scaling`` draw the paper's robustness and speedup
figures (from ``tables``). The numbers behind every figure live in ``analysis`` and ``tables``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from a3c_jax.analysis import runs as analysis, tables  # noqa: E402
from a3c_jax.core import curves  # noqa: E402
from a3c_jax.shell.figure import plot_run, run_series, save_figure  # noqa: E402,F401


_X_LABELS = {"env_steps": "environment steps", "wall_time_s": "wall-clock seconds"}


def _legend_label(label, n: int, ends: pd.DataFrame) -> str:
    """'a2c N=16 (3 seeds)'; when the group's curves end at uneven env steps
    (``tables.UNEVEN``), also where its curve is cut: '(3 seeds; cut at 60k of 300k env
    steps)'."""
    lo, hi = ends.loc[label, "env_steps_min"], ends.loc[label, "env_steps_max"]
    cut = (f"; cut at {curves.steps_text(lo)} of {curves.steps_text(hi)} env steps"
           if lo < tables.UNEVEN * hi else "")
    return f"{label} ({analysis.seeds_label(n)}{cut})"


def plot_comparison(df: pd.DataFrame, path: str | os.PathLike, stat: str = "mean",
                    by: str = "method", threshold: float | None = None, title: str | None = None,
                    num: int = 200, n_boot: int = 2000, ci: float = 0.95,
                    window_steps: float = curves.SMOOTH_WINDOW) -> Path:
    """Two panels: return smoothed over ``window_steps`` env steps (the y label says so)
    against env steps and against wall-clock seconds, one line (``stat`` over seeds) and a
    bootstrapped ``ci`` band per ``by`` group, in ``label_order``; ``threshold``, if given,
    is a grey dashed line with its own legend entry. A group whose curves end at uneven env
    steps says in the legend where its curve is cut. Groups whose runs made greedy
    evaluations (``eval_return``) add them as a dashed line of the group's colour (the same
    ``stat`` over seeds, no band)."""
    df = analysis.with_smoothed(df, window_steps)
    order = analysis.label_order(df, by)
    colors = {m: f"C{i}" for i, m in enumerate(order)}
    ends = analysis.curve_ends(df, by)
    # the legend goes under the panels: labels naming options are too long to sit on a curve
    below = 0.25 + 0.2 * (len(order) + (threshold is not None))   # inches under the panels
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2 + below))
    seeds = set()
    for ax, x in zip(axes, ("env_steps", "wall_time_s")):
        grid = analysis.interpolate(df, x=x, by=by, num=num)
        agg = analysis.aggregate_curves(grid, x=x, by=by, stat=stat, n_boot=n_boot, ci=ci)
        for label in order:
            g = agg[agg[by] == label]
            n = int(g["n"].iloc[0])
            seeds.add(n)
            ax.plot(g[x], g["estimate"], color=colors[label],
                    label=_legend_label(label, n, ends))
            ax.fill_between(g[x], g["lo"], g["hi"], color=colors[label], alpha=0.25, lw=0)
        greedy = _plot_greedy(ax, df, x, by, colors, stat, num)
        if threshold is not None:
            ax.axhline(threshold, color="0.5", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax.set_xlabel(_X_LABELS[x])
        over = "" if seeds == {1} else f"{stat} over seeds, "
        ax.set_ylabel(f"episode return\n({over}{curves.window_text(window_steps)}"
                      + ("; dashed: greedy)" if greedy else ")"))
        ax.grid(alpha=0.3)
    legend = axes[0].legend(fontsize="small", loc="lower left", frameon=False,
                            bbox_to_anchor=(0.02, 0.0), bbox_transform=fig.transFigure)
    legend.set_in_layout(False)   # it has its strip under the panels (tight_layout's rect)
    env = ", ".join(sorted(map(str, df["env"].unique()))) if "env" in df else ""
    fig.suptitle(title or _comparison_title(env, stat, ci, seeds))
    fig.tight_layout(rect=(0.0, below / (4.2 + below), 1.0, 1.0))
    return save_figure(fig, path)


def _plot_greedy(ax, df: pd.DataFrame, x: str, by: str, colors: dict, stat: str, num: int
                 ) -> bool:
    """The greedy evaluations (``eval_return``) of every group that has them, dashed in the
    group's colour; True if any was drawn."""
    if "eval_return" not in df.columns:
        return False
    has = df.groupby(by)["eval_return"].transform(lambda s: s.notna().any()).astype(bool)
    if not has.any():
        return False
    ev = analysis.interpolate(df[has], x=x, y="eval_return", by=by, num=num)
    agg = analysis.aggregate_curves(ev, x=x, y="eval_return", by=by, stat=stat, n_boot=1)
    for label, g in agg.groupby(by, sort=True):
        ax.plot(g[x], g["estimate"], color=colors[label], ls="--", label=f"{label} greedy")
    return True


def plot_panels_by_steps(df: pd.DataFrame, path: str | os.PathLike, panel: str,
                         by: str = "method", stat: str = "mean",
                         threshold: float | None = None, title: str | None = None,
                         num: int = 200, n_boot: int = 2000, ci: float = 0.95,
                         window_steps: float = curves.SMOOTH_WINDOW) -> Path:
    """Return smoothed over ``window_steps`` env steps against env steps, one panel per value
    of the column ``panel`` (e.g. the segments), one line (``stat`` over seeds) and a
    bootstrapped band per ``by`` group, the same colour for a group in every panel; the
    panels share the y axis."""
    df = analysis.with_smoothed(df, window_steps)
    panels = sorted(df[panel].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), sharey=True,
                             squeeze=False)
    order = analysis.label_order(df, by)
    colors = {m: f"C{i}" for i, m in enumerate(order)}
    for ax, value in zip(axes[0], panels):
        sub = df[df[panel] == value]
        grid = analysis.interpolate(sub, x="env_steps", by=by, num=num)
        agg = analysis.aggregate_curves(grid, x="env_steps", by=by, stat=stat,
                                        n_boot=n_boot, ci=ci)
        ends = analysis.curve_ends(sub, by)
        for label in [m for m in order if m in set(agg[by])]:
            g = agg[agg[by] == label]
            n = int(g["n"].iloc[0])
            ax.plot(g["env_steps"], g["estimate"], color=colors[label],
                    label=_legend_label(label, n, ends))
            ax.fill_between(g["env_steps"], g["lo"], g["hi"], color=colors[label], alpha=0.2,
                            lw=0)
        if threshold is not None:
            ax.axhline(threshold, color="0.5", ls="--", lw=0.8)
        ax.set_title(f"{panel}: {value}")
        ax.set_xlabel(_X_LABELS["env_steps"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    axes[0][0].set_ylabel(f"episode return\n({stat} over seeds, "
                          f"{curves.window_text(window_steps)})")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _comparison_title(env: str, stat: str, ci: float, seeds: set[int]) -> str:
    if seeds == {1}:
        return f"{env}: smoothed return (1 seed, no confidence band)"
    over = analysis.seeds_label(seeds.pop()) if len(seeds) == 1 else "seeds"
    return f"{env}: {stat} and {int(ci * 100)}% bootstrap CI over {over}"


def _lr_label(v: float) -> str:
    """A learning rate as plain text: 1e-4, 2.5e-3."""
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _log_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """At most ``max_ticks`` tick positions inside [lo, hi] on a log axis: 1-2-5 per decade,
    thinned to 1-3, 1, or every few decades over wide ranges, refined to 1..9 over narrow ones;
    three log-spaced points if even that gives fewer than two."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    ticks: list[float] = []
    for subs in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** k for k in decades for m in subs if lo <= m * 10.0 ** k <= hi]
        if len(ticks) <= max_ticks:
            break
    if len(ticks) > max_ticks:
        ticks = ticks[::math.ceil(len(ticks) / max_ticks)]
    if len(ticks) < 2:
        ticks = [m * 10.0 ** k for k in decades for m in range(1, 10)
                 if lo <= m * 10.0 ** k <= hi]
    if len(ticks) < 2:
        ticks = [float(v) for v in np.geomspace(lo, hi, 3)]
    return ticks


def plot_lr_scatter(df: pd.DataFrame, path: str | os.PathLike, by: str | None = None,
                    title: str | None = None, final_frac: float = 0.1) -> Path:
    """Final return against learning rate (log x, plain tick labels), one colour per method.

    ``df`` is either a tidy sweep table with ``lr`` and ``final_return`` columns (one row per
    run and seed), or a ``load_runs`` table, whose final returns are computed here."""
    if "final_return" not in df.columns:
        df = tables.per_seed(df, threshold=np.inf, by="method", final_frac=final_frac)
    by = by or ("method" if "method" in df.columns else "algo")
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, g) in enumerate(df.groupby(by, sort=True)):
        ax.scatter(g["lr"], g["final_return"], color=f"C{i}", label=str(label), alpha=0.75,
                   s=22)
    ax.set_xscale("log")
    lrs = df["lr"].to_numpy(np.float64)
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if lrs.size:
        lo, hi = lrs.min() / 1.25, lrs.max() * 1.25
        ax.set_xlim(lo, hi)
        ticks = _log_ticks(lo, hi)
        ax.set_xticks(ticks, [_lr_label(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("final episode return")
    seeds = int(df.groupby([by, "lr"]).size().max()) if len(df) else 0
    ax.set_title(title or f"final return against learning rate "
                          f"({analysis.seeds_label(seeds)} per learning rate)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_scaling(table: pd.DataFrame, path: str | os.PathLike, x: str = "total_envs",
                 group: str = "algo", title: str | None = None) -> Path:
    """Two panels against parallelism ``x``: speedup in wall-clock time to the threshold, and
    env steps per second; the dashed line is linear scaling."""
    if "speedup" not in table.columns:
        table = tables.scaling_table(table, x, group)
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
    return save_figure(fig, path)
