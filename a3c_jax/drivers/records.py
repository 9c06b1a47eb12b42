"""What a run reports, driver-neutral: update records, metrics.csv rows, the early-stop rule.

* An asynchronous worker appends one ``UpdateRecord`` per write to the store; ``rows_from_
  records`` bins them by global env steps into ``metrics.csv`` rows, ``update_rows`` gives
  ``updates.csv``.
* The synchronous driver's rows (``a3c_jax.shell.synchronous``) have the same schema: every
  row is ``curves.metrics_row`` of the sums over the updates it covers.
* ``StopMonitor`` is the early stop of every driver: the episode-weighted mean return over the
  last ``window`` env steps, exact, fed in env-step order; ``RecordsMonitor`` feeds it from
  records that arrive out of order from several workers.
"""

from __future__ import annotations

import collections
from typing import NamedTuple

import numpy as np

from a3c_jax.drivers import binning
from a3c_jax.core import curves
from a3c_jax.config.schema import Config


class UpdateRecord(NamedTuple):
    """What a worker appends after each write to the store."""

    worker: int
    update: int           # this worker's update index
    env_steps: int        # global T after this segment's claim
    wall_time_s: float
    version_read: int
    version_written: int
    staleness: int
    return_sum: float     # sum of returns of episodes completed in the segment
    episodes: float
    policy_loss: float
    value_loss: float
    entropy: float
    total_loss: float
    grad_norm: float = float("nan")            # the signals of ``algorithms.Metrics``
    sigma: float = float("nan")
    ev_count: float = 0.0                      # its moments of V (``curves.EV_MOMENTS``)
    ev_return: float = 0.0
    ev_return_sq: float = 0.0
    ev_error: float = 0.0
    ev_error_sq: float = 0.0
    nonfinite: int = 0    # 1: the gradient was not finite, nothing was written


def log_interval(config: Config) -> int:
    """Env steps per logged row: ``log_interval``, or about 200 rows per run."""
    return config.log_interval or max(config.total_steps // 200, 1)


def row_label(config: Config) -> str:
    """The ``algo`` column of a run's rows: the method, ``_sync`` for a sync value method."""
    if config.is_sync:
        return f"{config.algo}_sync" if config.family == "value" else "a2c"
    return config.algo


def row_builder(config: Config, seed: int) -> binning.RowBuilder:
    """The row rule of a run: every ``log_interval`` env steps or ``log_seconds`` seconds."""
    return binning.RowBuilder(row_label(config), seed, log_interval(config),
                              config.log_seconds)


def rows_from_records(config: Config, seed: int, records: list[UpdateRecord]) -> list[dict]:
    """Bin update records into metrics.csv rows (same schema as sync): a row per
    ``log_interval`` env steps, or sooner when ``log_seconds`` of training time have passed
    (``binning.RowBuilder``)."""
    return binning.bin_records(row_builder(config, seed), records)


def update_rows(seed: int, records: list[UpdateRecord]) -> list[dict]:
    return [dict(r._asdict(), seed=seed) for r in sorted(records, key=lambda r: r.version_written)]


def staleness_summary(records: list[UpdateRecord]) -> dict:
    if not records:
        return {"min": float("nan"), "mean": float("nan"), "max": float("nan")}
    s = np.array([r.staleness for r in records])
    return {"min": int(s.min()), "mean": float(s.mean()), "max": int(s.max())}


def reached(rows: list[dict], seed: int, config: Config) -> bool:
    """Whether ``seed``'s smoothed return in ``rows`` has reached ``config.stop_return``."""
    rs = [r for r in rows if r["seed"] == seed]
    if not rs:
        return False
    sm = curves.smoothed_returns(np.array([r["env_steps"] for r in rs]),
                                 np.array([r["episode_return"] for r in rs]),
                                 np.array([r["episodes"] for r in rs]), config.stop_window)
    return bool(sm[-1] >= config.stop_return)


class StopMonitor:
    """The early-stop statistic, exact: the episode-weighted mean return over the last
    ``window`` env steps, fed one update at a time in env-step order — what
    ``curves.smoothed_returns`` gives on the per-update records (``curves.updates_steps_to``).
    ``add`` returns True once the value has reached ``threshold`` (and stays True)."""

    def __init__(self, threshold: float, window: int):
        self.threshold, self.window = threshold, window
        self._entries: collections.deque = collections.deque()
        self._ret = self._eps = 0.0
        self.fired_at: int | None = None

    def add(self, env_steps: int, return_sum: float, episodes: float) -> bool:
        if self.fired_at is not None:
            return True
        self._entries.append((env_steps, return_sum, episodes))
        self._ret += return_sum
        self._eps += episodes
        while self._entries[0][0] <= env_steps - self.window:
            _, r, e = self._entries.popleft()
            self._ret -= r
            self._eps -= e
        if self._eps > 0 and self._ret / self._eps >= self.threshold:
            self.fired_at = env_steps
        return self.fired_at is not None


class RecordsMonitor:
    """``StopMonitor`` over the records the workers report (per-worker lists).

    Workers report out of env-step order, so the monitor only consumes the complete prefix
    (``binning.WorkerMerge``: records up to the smallest "last reported env step" over the
    workers). The stop decision is therefore exactly the per-update smoothed return computed
    after the run, never an artefact of arrival order."""

    def __init__(self, per_worker: list[list[UpdateRecord]], threshold: float, window: int):
        self.merge = binning.WorkerMerge(per_worker)
        self.monitor = StopMonitor(threshold, window)

    def reached(self) -> bool:
        self.merge.take()
        for r in self.merge.ordered():
            self.monitor.add(r.env_steps, r.return_sum, r.episodes)
        return self.monitor.fired_at is not None


def make_monitor(config: Config, per_worker: list[list[UpdateRecord]]) -> RecordsMonitor | None:
    if not config.stop_return:
        return None
    return RecordsMonitor(per_worker, config.stop_return, config.stop_window)
