"""Curve statistics: the rows a run logs, smoothed returns, and env steps to a threshold.

``METRIC_COLUMNS`` are the columns of ``metrics.csv`` (one row per logged interval per seed,
the same for every driver), built by ``metrics_row`` from the sums over the updates a row
covers (``RowSums``); ``UPDATE_COLUMNS`` those of ``updates.csv`` (one row per asynchronous
update). The statistics are plain numpy on one seed's rows or records, shared by the drivers'
early stop, the run shell's summaries and the analysis tools.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

SIGNALS = ("grad_norm", "explained_variance", "sigma")
"""The collapse signals of a row: the gradient norm before clipping, the value function's
explained variance, a Gaussian policy's sigma."""
AVERAGED = ("grad_norm", "sigma")
"""The signals a row averages over the updates that have one (NaN: none)."""
EV_MOMENTS = ("ev_count", "ev_return", "ev_return_sq", "ev_error", "ev_error_sq")
"""What an update reports of its value function, summed over a row: the number of steps V was
scored on, and over them the sums of the returns G it regresses to, of G^2, of G - V and of
(G - V)^2. A row's explained variance pools every step of its updates (``explained_variance``):
an A3C update has t_max = 5 nearly equal returns, too few to measure V against on its own
(their variance is tiny: a per-update ratio averaged over a row read -100 to -1400 on
Pendulum for a V whose value loss was 0.0006)."""
METRIC_COLUMNS = ("algo", "seed", "env_steps", "wall_time_s", "episode_return", "episodes",
                  "policy_loss", "value_loss", "entropy", "total_loss", "staleness",
                  *SIGNALS, "eval_return")
"""``eval_return``: mean return of the greedy evaluation shown at this row (``eval_every``;
blank on rows without one)."""
UPDATE_COLUMNS = ("seed", "worker", "update", "env_steps", "wall_time_s", "version_read",
                  "version_written", "staleness", "return_sum", "episodes", "nonfinite")


class RowSums(NamedTuple):
    """Sums over the updates one metrics.csv row covers (an update with no finished episode
    adds 0 to ``episodes`` and ``return_sum``)."""

    updates: float
    episodes: float       # episodes completed
    return_sum: float     # sum of their returns
    policy_loss: float
    value_loss: float
    entropy: float
    total_loss: float
    staleness: float = 0.0   # 0 on the synchronous driver
    grad_norm: float = 0.0            # each averaged signal: its sum over the updates that
    sigma: float = 0.0                # have one ...
    grad_norm_updates: float = 0.0    # ... and the number of those updates
    sigma_updates: float = 0.0
    ev_count: float = 0.0             # ``EV_MOMENTS``, summed over the updates
    ev_return: float = 0.0
    ev_return_sq: float = 0.0
    ev_error: float = 0.0
    ev_error_sq: float = 0.0


def metrics_row(algo: str, seed: int, env_steps: int, wall_time_s: float, sums: RowSums
                ) -> dict:
    """One metrics.csv row, the same for every driver: ``episode_return = return_sum /
    episodes`` (NaN when no episode completed), ``episodes`` rounded to an integer, and each
    loss and the staleness as its mean per update (``sum / updates``), each of ``SIGNALS`` as
    its mean over the updates that have one (NaN when none has), but the explained variance,
    pooled over every step of the row's updates (``explained_variance``)."""
    n, ep = float(sums.updates), float(sums.episodes)
    signal = {f: float(getattr(sums, f)) / float(getattr(sums, f + "_updates"))
              if getattr(sums, f + "_updates") else float("nan") for f in AVERAGED}
    signal["explained_variance"] = float(explained_variance(
        *(getattr(sums, f) for f in EV_MOMENTS)))
    return {"algo": algo, "seed": seed, "env_steps": int(env_steps),
            "wall_time_s": float(wall_time_s),
            "episode_return": float(sums.return_sum) / ep if ep else float("nan"),
            "episodes": int(round(ep)),
            "policy_loss": float(sums.policy_loss) / n, "value_loss": float(sums.value_loss) / n,
            "entropy": float(sums.entropy) / n, "total_loss": float(sums.total_loss) / n,
            "staleness": float(sums.staleness) / n, **signal}


def explained_variance(count, g, g2, e, e2):
    """1 - Var[G - V] / Var[G] from the ``EV_MOMENTS`` sums of some steps: 1 when V predicts
    the returns, 0 when it predicts no better than their mean, below 0 when worse. NaN when no
    step was scored or the returns do not vary (nothing to explain; a variance within float32
    rounding of the mean square counts as none), never an infinity. Elementwise on arrays."""
    count, g, g2, e, e2 = (np.asarray(x, np.float64) for x in (count, g, g2, e, e2))
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(count > 0, count, np.nan)
        var_g = g2 / n - (g / n) ** 2
        var_e = np.maximum(e2 / n - (e / n) ** 2, 0.0)
        ok = var_g > 1e-6 * (g2 / n)
        return np.where(ok, 1.0 - var_e / np.where(ok, var_g, 1.0), np.nan)


FINAL_FRAC = 0.1
"""The final return of a curve averages its last 10% of env steps."""

SMOOTH_WINDOW = 10_000
"""Env steps in the trailing window of every smoothed return: the asynchronous early stop
(``stop_window``'s default), the steps to a threshold of the tables and the curves of the
figures. A fixed number of env steps, not a fraction of the budget, so that one run gives the
same smoothed curve and the same steps to a threshold whatever budget it was compared at."""


def steps_text(steps: float) -> str:
    """A number of env steps, short: 500, 2.5k, 10k, 1.2M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:.3g}{suffix}"
    return f"{steps:.3g}"


def window_text(window_steps: float) -> str:
    """How a smoothed curve was smoothed, for captions: 'smoothed over 10k env steps'."""
    return f"smoothed over {steps_text(window_steps)} env steps"


def _cell(value) -> float:
    """A row's value as a float; a blank cell (as a CSV gives it) is NaN."""
    return float("nan") if value in ("", None) else float(value)


def row_arrays(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(env_steps, episode_return, episodes) of one seed's metrics rows as float64 [rows]
    arrays, in env-step order (stable); a blank return is NaN, blank episodes 0."""
    rows = sorted(rows, key=lambda r: float(r["env_steps"]))
    return (np.array([float(r["env_steps"]) for r in rows], np.float64),
            np.array([_cell(r["episode_return"]) for r in rows], np.float64),
            np.nan_to_num(np.array([_cell(r["episodes"]) for r in rows], np.float64)))


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


def threshold_index(smoothed: np.ndarray, threshold: float) -> int | None:
    """Index of the first entry of ``smoothed`` at or above ``threshold`` (a NaN entry, no
    episode yet, never is); None if none is."""
    hit = np.nonzero(np.nan_to_num(np.asarray(smoothed, np.float64), nan=-np.inf)
                     >= threshold)[0]
    return int(hit[0]) if len(hit) else None


def steps_to_threshold(env_steps: np.ndarray, smoothed: np.ndarray, threshold: float) -> float:
    """First env step at which the smoothed return reaches ``threshold``; NaN if never."""
    i = threshold_index(smoothed, threshold)
    return float(np.asarray(env_steps)[i]) if i is not None else float("nan")


def final_return(env_steps, episode_return, episodes, frac: float = FINAL_FRAC) -> float:
    """Episode-weighted mean return over the last ``frac`` of a curve's env steps (in env-step
    order; at least the last entry): ``sum(R_i n_i) / sum(n_i)`` over the entries with
    ``env_steps > (1 - frac) max(env_steps)``; NaN when no episode completed there."""
    env_steps = np.asarray(env_steps, np.float64)
    ret = np.nan_to_num(np.asarray(episode_return, np.float64))
    eps = np.nan_to_num(np.asarray(episodes, np.float64))
    if env_steps.size == 0:
        return float("nan")
    sel = env_steps > env_steps.max() * (1.0 - frac)   # a row logs the steps ending there
    sel[-1] = True
    n = eps[sel].sum()
    return float((ret[sel] * eps[sel]).sum() / n) if n > 0 else float("nan")


def updates_steps_to(update_rows: Sequence[dict], threshold: float,
                     window_steps: int = SMOOTH_WINDOW, seed: int | None = None) -> float:
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


def eval_arrays(rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, eval_return) of the rows of one seed that show a greedy evaluation, as
    float64 arrays in env-step order (empty when the run made none)."""
    got = sorted((float(r["env_steps"]), _cell(r.get("eval_return")))
                 for r in rows if not math.isnan(_cell(r.get("eval_return"))))
    return (np.array([s for s, _ in got], np.float64),
            np.array([v for _, v in got], np.float64))


def final_eval_return(env_steps, eval_return, last_step: float | None = None,
                      frac: float = FINAL_FRAC) -> float:
    """Mean of the greedy evaluations (each already a mean over its episodes) over the last
    ``frac`` of the curve's env steps (``last_step``: its end, by default the last
    evaluation's), at least the last one; NaN when there is none."""
    env_steps = np.asarray(env_steps, np.float64)
    values = np.asarray(eval_return, np.float64)
    if env_steps.size == 0:
        return float("nan")
    end = env_steps.max() if last_step is None else float(last_step)
    sel = env_steps > end * (1.0 - frac)
    sel[np.argmax(env_steps)] = True
    return float(values[sel].mean())
