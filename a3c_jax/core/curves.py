"""Curve statistics: the rows a run logs, smoothed returns, and env steps to a threshold.

``METRIC_COLUMNS`` are the columns of ``metrics.csv`` (one row per logged interval per seed,
the same for every driver); ``UPDATE_COLUMNS`` those of ``updates.csv`` (one row per
asynchronous update). The statistics are plain numpy on one seed's rows or records, shared by
the drivers' early stop, the run shell's summaries and the analysis tools.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

METRIC_COLUMNS = ("algo", "seed", "env_steps", "wall_time_s", "episode_return", "episodes",
                  "policy_loss", "value_loss", "entropy", "total_loss", "staleness")
UPDATE_COLUMNS = ("seed", "worker", "update", "env_steps", "wall_time_s", "version_read",
                  "version_written", "staleness", "return_sum", "episodes")


def aggregate(rows: Sequence[dict], key: str = "episode_return", weight: str = "episodes"
              ) -> float:
    """Episode-weighted mean of ``key`` over rows; NaN when no episode completed."""
    num = sum(float(r[key]) * float(r[weight]) for r in rows
              if r.get(weight) and float(r[weight]) > 0 and not math.isnan(float(r[key])))
    den = sum(float(r[weight]) for r in rows if r.get(weight) and float(r[weight]) > 0)
    return num / den if den > 0 else float("nan")


def smoothed_returns(env_steps: np.ndarray, episode_return: np.ndarray, episodes: np.ndarray,
                     window_steps: int) -> np.ndarray:
    """Episode-weighted moving average of completed-episode returns over a trailing window of
    ``window_steps`` env steps; NaN until the first episode completes.

    Inputs are 1-D, one entry per update or logged row (``episode_return`` is the mean return
    of the ``episodes`` completed in that entry).
    """
    env_steps = np.asarray(env_steps, np.float64)
    w = np.nan_to_num(np.asarray(episode_return, np.float64)) * np.asarray(episodes, np.float64)
    n = np.asarray(episodes, np.float64)
    cs_w = np.concatenate([[0.0], np.cumsum(w)])
    cs_n = np.concatenate([[0.0], np.cumsum(n)])
    start = np.searchsorted(env_steps, env_steps - window_steps, side="right")
    idx = np.arange(len(env_steps)) + 1
    num = cs_w[idx] - cs_w[start]
    den = cs_n[idx] - cs_n[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def steps_to_threshold(env_steps: np.ndarray, smoothed: np.ndarray, threshold: float) -> float:
    """First env step at which the smoothed return reaches ``threshold``; NaN if never."""
    hit = np.nonzero(np.nan_to_num(smoothed, nan=-np.inf) >= threshold)[0]
    return float(np.asarray(env_steps)[hit[0]]) if len(hit) else float("nan")


def updates_steps_to(update_rows: Sequence[dict], threshold: float, window_steps: int = 10_000,
                     seed: int | None = None) -> float:
    """Env steps at which a seed's smoothed return over its per-update records
    (``updates.csv`` rows of an asynchronous run) first reaches ``threshold``; NaN if never.
    This is the statistic the asynchronous early stop (``stop_return``) uses, exactly."""
    rs = sorted((r for r in update_rows if seed is None or int(r["seed"]) == seed),
                key=lambda r: float(r["env_steps"]))
    steps = np.array([float(r["env_steps"]) for r in rs])
    eps = np.array([float(r["episodes"]) for r in rs])
    ret = np.array([float(r["return_sum"]) / e if e else np.nan
                    for r, e in zip(rs, eps)])
    return steps_to_threshold(steps, smoothed_returns(steps, ret, eps, window_steps), threshold)
