"""Tables of runs: per-seed results, a summary per method, speedups, learning-rate sweeps, and
their markdown / CSV forms.

Everything reads the tidy DataFrame of ``analysis.load_runs`` (or a table built by hand with
the same columns). ``summary_table`` gives, per method, the final return with a bootstrapped
interval, env steps and wall-clock seconds to a threshold, and throughput; ``write_summary``
writes it as CSV (every column) and markdown (readable); ``scaling_table`` adds speedups
relative to the smallest setting; ``lr_table`` summarises a learning-rate sweep.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from a3c_jax.core import curves
from a3c_jax.shell import files
from a3c_jax.analysis.runs import (CURVE_KEY, bootstrap_ci, curve_ends, label_order,
                                   with_smoothed)

SUMMARY_COLUMNS = ("method", "algo", "env", "workers", "envs_per_worker", "total_envs", "lr",
                   "seeds", "final_return", "final_return_lo", "final_return_hi",
                   "threshold", "window_steps", "reached", "steps_to_threshold",
                   "seconds_to_threshold", "env_steps_min", "env_steps_max", "env_steps_per_s",
                   "wall_time_s", "staleness", "measure")
UNEVEN = 0.95
"""A group's curves have uneven budgets when its shortest ends before this fraction of its
longest (asynchronous runs overshoot ``total_steps`` by a few updates; an early stop or an
interruption ends a curve much earlier)."""
LR_COLUMNS = ("algo", "runs", "mean final return", "median final return", "max final return",
              "best lr")


def per_seed(df: pd.DataFrame, threshold: float, by: str = "method",
             final_frac: float = curves.FINAL_FRAC,
             window_steps: float = curves.SMOOTH_WINDOW) -> pd.DataFrame:
    """One row per (group, run, seed): final return, env steps and wall-clock seconds at which
    the return smoothed over ``window_steps`` env steps first reaches ``threshold`` (NaN if
    never), env steps per second. ``measure`` says which return: ``greedy`` where the seed's
    rows have greedy evaluations (``eval_return``: their mean over the final steps, the first
    evaluation at or above the threshold), else ``behaviour`` (the training episodes' return,
    smoothed)."""
    df = with_smoothed(df, window_steps)
    rows = []
    for (label, run_dir, seed), g in df.groupby([by] + CURVE_KEY, sort=True):
        g = g.sort_values("env_steps")
        last = g.iloc[-1]
        greedy = "eval_return" in g and g["eval_return"].notna().any()
        if greedy:
            ev = g[g["eval_return"].notna()]
            hit = curves.threshold_index(ev["eval_return"].to_numpy(np.float64), threshold)
            hit = None if hit is None else g.index.get_loc(ev.index[hit])
            final = curves.final_eval_return(ev["env_steps"], ev["eval_return"],
                                             float(last["env_steps"]), final_frac)
        else:
            hit = curves.threshold_index(g["smoothed"].to_numpy(np.float64), threshold)
            final = curves.final_return(g["env_steps"], g["episode_return"], g["episodes"],
                                        final_frac)
        wall = float(last["wall_time_s"])
        rows.append({
            by: label, "run": last.get("run", Path(run_dir).name), "run_dir": run_dir,
            "seed": int(seed), "algo": last["algo"], "lr": float(last["lr"]),
            "final_return": final, "measure": "greedy" if greedy else "behaviour",
            "steps_to_threshold": np.nan if hit is None else float(g["env_steps"].iloc[hit]),
            "seconds_to_threshold": (np.nan if hit is None
                                     else float(g["wall_time_s"].iloc[hit])),
            "env_steps": float(last["env_steps"]), "wall_time_s": wall,
            "env_steps_per_s": float(last["env_steps"]) / wall if wall > 0 else np.nan,
            "staleness": float(np.nanmean(g["staleness"])) if g["staleness"].notna().any()
            else np.nan,
        })
    return pd.DataFrame(rows)


def summary_table(df: pd.DataFrame, threshold: float = 475.0, stat: str = "mean",
                  by: str = "method", final_frac: float = curves.FINAL_FRAC, n_boot: int = 2000,
                  ci: float = 0.95, window_steps: float = curves.SMOOTH_WINDOW
                  ) -> pd.DataFrame:
    """Per group: final return (``stat`` over seeds with a bootstrapped ``ci`` interval), how
    many seeds reached ``threshold`` (the return smoothed over ``window_steps`` env steps),
    mean env steps and wall-clock seconds to reach it over the seeds that did, the env steps
    the shortest and the longest curve reached (``budget_warnings``), env steps per second,
    total seconds and mean staleness.

    Rows are in ``label_order`` (the order the runs were loaded in). ``workers``/
    ``envs_per_worker`` are blank for sync runs (a2c, nq_sync...: N = ``total_envs`` envs).
    ``measure`` says which return the group's row shows: ``greedy`` (the runs' greedy
    evaluations, preferred where they have them) or ``behaviour`` (``per_seed``)."""
    seeds = per_seed(df, threshold, by, final_frac, window_steps)
    ends = curve_ends(df, by)
    rows = []
    for label in label_order(df, by):
        g = seeds[seeds[by] == label]
        meta = df[df[by] == label].iloc[0]
        finals = g["final_return"].to_numpy(np.float64)
        finals = finals[np.isfinite(finals)]
        est, lo, hi = (bootstrap_ci(finals, stat, n_boot, ci) if finals.size
                       else (np.nan, np.nan, np.nan))
        sync = meta["algo"] == "a2c" or str(meta["algo"]).endswith("_sync")
        rows.append({
            "method": label, "algo": meta["algo"], "env": meta["env"],
            "workers": np.nan if sync else int(meta["workers"]),
            "envs_per_worker": np.nan if sync else int(meta["envs_per_worker"]),
            "total_envs": int(meta["total_envs"]), "lr": float(meta["lr"]),
            "seeds": len(g), "final_return": float(est), "final_return_lo": float(lo),
            "final_return_hi": float(hi), "threshold": float(threshold),
            "window_steps": float(window_steps),
            "reached": int(g["steps_to_threshold"].notna().sum()),
            "steps_to_threshold": float(g["steps_to_threshold"].mean()),
            "seconds_to_threshold": float(g["seconds_to_threshold"].mean()),
            "env_steps_min": float(ends.loc[label, "env_steps_min"]),
            "env_steps_max": float(ends.loc[label, "env_steps_max"]),
            "env_steps_per_s": float(g["env_steps_per_s"].mean()),
            "wall_time_s": float(g["wall_time_s"].mean()),
            "staleness": float(g["staleness"].mean()),
            "measure": "/".join(sorted(set(g["measure"]))),
        })
    table = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if by != "method":
        table = table.rename(columns={"method": by})
    return table


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


def _ratio_ci(num: np.ndarray, den: np.ndarray, n_boot: int, ci: float, seed: int
              ) -> tuple[float, float]:
    """Percentile bootstrap of mean(num) / mean(den), each side's seeds resampled apart."""
    num, den = num[np.isfinite(num)], den[np.isfinite(den)]
    if num.size == 0 or den.size == 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    a = num[rng.integers(0, num.size, (n_boot, num.size))].mean(1)
    b = den[rng.integers(0, den.size, (n_boot, den.size))].mean(1)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(a / b, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def speedup_intervals(seeds: pd.DataFrame, table: pd.DataFrame, x: str = "total_envs",
                      group: str = "algo", by: str = "method", n_boot: int = 2000,
                      ci: float = 0.95) -> pd.DataFrame:
    """``table`` (``scaling_table``'s) with bootstrapped ``ci`` intervals of its speedups over
    seeds (``per_seed`` rows): ``speedup_lo/hi`` (time to the threshold, over the seeds that
    reached it) and ``throughput_speedup_lo/hi`` (env steps per second)."""
    out = table.copy()
    for col in ("speedup_lo", "speedup_hi", "throughput_speedup_lo", "throughput_speedup_hi"):
        out[col] = np.nan
    for _, g in out.groupby(group, sort=True):
        base = seeds[seeds[by] == g.sort_values(x).iloc[0][by]]
        for i, row in g.iterrows():
            mine = seeds[seeds[by] == row[by]]
            out.loc[i, ["speedup_lo", "speedup_hi"]] = _ratio_ci(
                base["seconds_to_threshold"].to_numpy(float),
                mine["seconds_to_threshold"].to_numpy(float), n_boot, ci, 0)
            out.loc[i, ["throughput_speedup_lo", "throughput_speedup_hi"]] = _ratio_ci(
                mine["env_steps_per_s"].to_numpy(float),
                base["env_steps_per_s"].to_numpy(float), n_boot, ci, 1)
    return out


def lr_table(sweep: pd.DataFrame, by: str = "algo") -> pd.DataFrame:
    """Summary of a learning-rate sweep (one row per run and seed, columns ``by``, ``lr``,
    ``final_return``): per group, the number of runs, the mean, median and max final return,
    and the best learning rate (highest mean final return over its seeds)."""
    rows = []
    for label, g in sweep.groupby(by, sort=True):
        finals = g["final_return"].astype(float)
        per_lr = g.assign(final_return=finals).groupby("lr")["final_return"].mean()
        best = per_lr.idxmax() if per_lr.notna().any() else np.nan
        rows.append({by: label, "runs": len(g), "mean final return": finals.mean(),
                     "median final return": finals.median(), "max final return": finals.max(),
                     "best lr": f"{best:.3g}" if np.isfinite(best) else "—"})
    return pd.DataFrame(rows, columns=[by] + list(LR_COLUMNS[1:]))


def fmt_cell(v) -> str:
    """A table cell: integers without a point, 4 significant digits, — for NaN."""
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
        lines.append("| " + " | ".join(fmt_cell(row[c]) for c in table.columns) + " |")
    return "\n".join(lines) + "\n"


def budget_warnings(table: pd.DataFrame) -> list[str]:
    """One sentence per group of a summary table whose curves end at uneven env steps (the
    shortest before ``UNEVEN`` of the longest): its figure's curve stops where the shortest
    stops, and its final returns average different stretches of training."""
    if "env_steps_min" not in table.columns:
        return []
    return [f"{row.iloc[0]}: its curves end between {fmt_cell(row['env_steps_min'])} and "
            f"{fmt_cell(row['env_steps_max'])} env steps (uneven budgets, e.g. an early stop "
            f"or an interrupted run); its curve stops at {fmt_cell(row['env_steps_min'])} and "
            f"its final return averages each curve's own last 10%"
            for _, row in table.iterrows()
            if row["env_steps_min"] < UNEVEN * row["env_steps_max"]]


def _budget_cell(lo: float, hi: float) -> str:
    """The env steps of a group's curves: '300000', or '60000-300000 (uneven)'."""
    if not lo < UNEVEN * hi:
        return fmt_cell(hi)
    return f"{fmt_cell(lo)}-{fmt_cell(hi)} (uneven)"


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary table as a human-readable markdown table with the CI folded in, under a
    caption that says how the threshold columns were smoothed and which groups' budgets are
    uneven (``budget_warnings``)."""
    if "final_return" not in table.columns:
        return to_markdown(table)
    thr = fmt_cell(float(table["threshold"].iloc[0])) if len(table) else "threshold"
    view = pd.DataFrame({
        table.columns[0]: table.iloc[:, 0],
        "seeds": table["seeds"],
        "final return [95% CI]": [
            f"{fmt_cell(m)} [{fmt_cell(lo)}, {fmt_cell(hi)}]" for m, lo, hi in
            zip(table["final_return"], table["final_return_lo"], table["final_return_hi"])],
        f"seeds reaching {thr}": [f"{r}/{s}" for r, s in zip(table["reached"], table["seeds"])],
        f"env steps to {thr}": table["steps_to_threshold"],
        f"seconds to {thr}": table["seconds_to_threshold"],
        "env steps": [_budget_cell(lo, hi) for lo, hi in
                      zip(table["env_steps_min"], table["env_steps_max"])],
        "env steps/s": table["env_steps_per_s"].round(0),
        "seconds": table["wall_time_s"],
        "staleness": table["staleness"],
    })
    if "measure" in table.columns:
        view.insert(2, "return", table["measure"])
    windows = sorted(set(table["window_steps"]))
    caption = (f"Return {' / '.join(curves.window_text(w) for w in windows)} "
               f"(episode-weighted mean of the episodes that ended in that trailing window) "
               f"for the columns 'to {thr}'; the 'return' column says whether a row shows the "
               f"greedy evaluations or the training episodes.\n" if windows else "")
    warnings = "".join(f"Warning: {w}.\n" for w in budget_warnings(table))
    return caption + "\n" + to_markdown(view) + ("\n" + warnings if warnings else "")


def write_summary(table: pd.DataFrame, out_dir: str | os.PathLike, name: str = "summary"
                  ) -> tuple[Path, Path]:
    """Write ``{name}.csv`` (every column) and ``{name}.md`` (readable) atomically."""
    out_dir = Path(out_dir)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    files.atomic_write_text(csv_path, table.to_csv(index=False))
    note = ("Final return: mean episode return over the last 10% of env steps per seed, "
            "aggregated over seeds with a bootstrapped 95% CI. Steps and seconds to the "
            "threshold: first logged point where the smoothed return reaches it, averaged over "
            "the seeds that did (— if none); the window is a fixed number of env steps, so a "
            "run's numbers do not depend on the budget it was compared at. Env steps: how far "
            "the group's curves ran (a range when they stopped at uneven budgets). Seconds "
            "count from the end of compilation.\n")
    files.atomic_write_text(md_path, summary_markdown(table) + "\n" + note)
    return csv_path, md_path
