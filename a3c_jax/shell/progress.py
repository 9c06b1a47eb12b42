"""What a run shows while it trains, and the line it ends with.

``ProgressDisplay(config)`` subscribes to a run's stream of logged rows
(``sink.RowSink``): ``phase(name)`` (``"compile"`` while the program compiles, ``"train"``
once it runs), ``rows(rows)`` (new ``metrics.csv`` rows, as the drivers log them) and
``close()``. It tells the truth about each phase:

* while compiling it says so and shows no rate or ETA (compiling is not training); the
  compile phase ends when a driver says training started, or else at the first logged rows
  ("compiled and warmed up": the process backend's workers compile in their own processes);
* once training, no rate is shown before env steps have been logged twice ("warming up"),
  then env steps/s measured from the first logged rows, the ETA from that rate, the recent
  smoothed return (the episode-weighted mean over the last ``stop_window`` env steps,
  averaged over the seeds) and, for asynchronous runs, the mean staleness;
* the total is ``total_steps`` times the number of seeds (vmapped seeds step together).

On a terminal it is a tqdm bar; when the output is not a terminal (a cluster log, a pipe) it
prints one plain line every ``interval_s`` seconds instead. ``summary_line(result)`` is the
line a command ends with: the final return, the steps and seconds to the threshold if one was
set (``stop_return``), and where the files are.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO

import numpy as np

from a3c_jax.config.schema import Config
from a3c_jax.core import curves
from a3c_jax.drivers import records


def _si(x: float) -> str:
    """12345 -> '12.3k'."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def _by_seed(rows: list[dict]) -> dict[int, list[dict]]:
    seeds: dict[int, list[dict]] = {}
    for r in rows:
        seeds.setdefault(int(r["seed"]), []).append(r)
    return seeds


def threshold_hit(rows: list[dict], threshold: float, window: int) -> tuple[float, float]:
    """(env steps, wall-clock seconds) at which one seed's smoothed return first reaches
    ``threshold``; NaNs if it never does."""
    rows = sorted(rows, key=lambda r: float(r["env_steps"]))
    steps, ret, eps = curves.row_arrays(rows)
    i = curves.threshold_index(curves.smoothed_returns(steps, ret, eps, window), threshold)
    if i is None:
        return float("nan"), float("nan")
    return float(steps[i]), float(rows[i]["wall_time_s"])


def summary_line(result) -> str:
    """One line for the end of a run (a ``runner.RunResult``)."""
    c: Config = result.config
    seeds = _by_seed(result.rows)
    status = "interrupted" if result.interrupted else "done"
    steps = [max(float(r["env_steps"]) for r in rs) for rs in seeds.values()]
    walls = [max(float(r["wall_time_s"]) for r in rs) for rs in seeds.values()]
    parts = [f"{status}: {records.row_label(c)} on {c.env}, {len(seeds)}/{len(c.seeds)} "
             f"seed{'s' if len(c.seeds) > 1 else ''}, {_si(np.mean(steps)) if steps else 0} "
             f"env steps per seed in {max(walls, default=0):.1f} s"]
    compile_s = result.extras.get("compile_s")
    if compile_s:
        parts[0] += f" (+{compile_s:.1f} s compiling and initialising)"
    finals = [curves.final_return(*curves.row_arrays(rs)) for rs in seeds.values()]
    finals = [f for f in finals if not math.isnan(f)]
    if finals:
        spread = (f" (seeds from {min(finals):.4g} to {max(finals):.4g})" if len(finals) > 1
                  else "")
        parts.append(f"final return {np.mean(finals):.4g}{spread}")
    else:
        parts.append("no episode finished")
    evals = [curves.final_eval_return(*curves.eval_arrays(rs),
                                      max(float(r["env_steps"]) for r in rs))
             for rs in seeds.values()]
    evals = [e for e in evals if not math.isnan(e)]
    if evals:
        parts.append(f"final greedy return {np.mean(evals):.4g} (eval_return)")
    if c.stop_return:
        hits = [threshold_hit(rs, c.stop_return, c.stop_window) for rs in seeds.values()]
        hits = [h for h in hits if not math.isnan(h[0])]
        reach = f"{c.stop_return:g} reached by {len(hits)}/{len(seeds)}"
        if hits:
            reach += (f" at {_si(np.mean([h[0] for h in hits]))} env steps, "
                      f"{np.mean([h[1] for h in hits]):.1f} s (mean)")
        parts.append(reach)
    if result.run_dir is not None:   # name only what was written (no plot without rows)
        names = [n for n in ("metrics.csv", "returns.png", "config.json", "run.json")
                 if (result.run_dir / n).exists()]
        parts.append(f"files in {result.run_dir}/ ({', '.join(names)})")
    return "; ".join(parts)


class ProgressDisplay:
    """Progress of one run from its logged rows; see the module docstring."""

    def __init__(self, config: Config | None = None, stream: IO | None = None,
                 interval_s: float = 10.0, terminal: bool | None = None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = (terminal if terminal is not None
                         else bool(getattr(self.stream, "isatty", lambda: False)()))
        self.interval_s = interval_s
        self.clock = clock
        self.bar = None
        self._last_line = -math.inf
        if config is not None:
            self.start(config)

    # --- what the run calls ---------------------------------------------------------------
    def start(self, config: Config) -> None:
        """Follow a run of ``config`` (called by the constructor when given a config)."""
        self.config = config
        self.label = f"{records.row_label(config)} {config.env}"
        self.total = config.total_steps * len(config.seeds)
        self.window = max(config.stop_window, 2 * records.log_interval(config))
        self.seed_rows: dict[int, list[dict]] = {}
        self.phase_name, self.phase_t = "start", self.clock()
        self.first: tuple[float, int] | None = None     # (clock, steps) at the first rows
        self.closed = False

    def phase(self, name: str) -> None:
        """``"compile"`` while the program compiles (the runner says so before it starts);
        ``"train"`` once it runs, said by a driver or implied by the first logged rows."""
        now = self.clock()
        if name == self.phase_name:
            return
        if self.phase_name == "compile":
            what = "compiled and initialised" if not self.seed_rows else \
                "compiled and warmed up"
            self._say(f"{self.label}: {what} in {now - self.phase_t:.1f} s")
        self.phase_name, self.phase_t = name, now
        if name == "compile":
            self._say(f"{self.label}: compiling (no env steps yet; the rate starts after)")
        self._refresh(force=True)

    def rows(self, rows: list[dict]) -> None:
        for r in rows:
            self.seed_rows.setdefault(int(r["seed"]), []).append(r)
        if rows and self.phase_name != "train":
            self.phase("train")
        if rows and self.first is None:
            self.first = (self.clock(), self.done)
        self._refresh()

    def close(self) -> None:
        """The run ended: a last line (or the bar's last state), then the bar goes."""
        self.closed = True
        if self.phase_name == "train":
            self._refresh(force=True)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # --- what is shown -------------------------------------------------------------------
    @property
    def done(self) -> int:
        """Env steps logged so far over all seeds."""
        return int(sum(min(float(rs[-1]["env_steps"]), self.config.total_steps)
                       for rs in self.seed_rows.values()))

    def rate(self) -> float:
        """Env steps/s since the first logged rows; NaN before a second measurement."""
        if self.first is None:
            return float("nan")
        dt = self.clock() - self.first[0]
        return (self.done - self.first[1]) / dt if dt > 0 and self.done > self.first[1] \
            else float("nan")

    def recent_return(self) -> float:
        """The smoothed return of each seed over its last ``window`` env steps, averaged."""
        values = []
        for rs in self.seed_rows.values():
            top = float(rs[-1]["env_steps"])
            value = curves.aggregate([r for r in rs[-64:] if float(r["env_steps"]) > top -
                                      self.window])
            if not math.isnan(value):
                values.append(value)
        return float(np.mean(values)) if values else float("nan")

    def recent_staleness(self) -> float:
        recent = [float(r["staleness"]) for rs in self.seed_rows.values() for r in rs[-4:]
                  if r.get("staleness") not in ("", None)]
        return float(np.mean(recent)) if recent else float("nan")

    def status(self) -> str:
        """What the display says now, without the bar."""
        if self.phase_name == "compile":
            return f"compiling {self.clock() - self.phase_t:.0f} s"
        rate = self.rate()
        if math.isnan(rate):
            if self.closed or self.done >= self.total:
                return "no rate: every row came at once"   # e.g. the emulated backend
            return "warming up" if self.phase_name == "train" else self.phase_name
        parts = [f"{_si(rate)} env steps/s"]
        if not self.closed:
            parts.append(f"ETA {_clock((self.total - self.done) / rate)}")
        ret = self.recent_return()
        parts.append("return -" if math.isnan(ret) else f"return {ret:.4g}")
        if self.config.is_async:
            stale = self.recent_staleness()
            if not math.isnan(stale):
                parts.append(f"staleness {stale:.2g}")
        return ", ".join(parts)

    def line(self) -> str:
        """The plain line printed when the output is not a terminal."""
        pct = 100.0 * self.done / self.total if self.total else 0.0
        took = f" in {_clock(self.clock() - self.phase_t)}" if self.closed else ""
        return (f"{self.label}: {_si(self.done)}/{_si(self.total)} env steps ({pct:.0f}%){took}, "
                f"{self.status()}")

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _refresh(self, force: bool = False) -> None:
        if not self.terminal:
            now = self.clock()
            if self.phase_name == "train" and (force or now - self._last_line >= self.interval_s):
                self._last_line = now
                self._say(self.line())
            return
        if self.bar is None and self.phase_name == "train":
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.label, file=self.stream, leave=False,
                            unit="step", unit_scale=True, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}{postfix}]")
        if self.bar is not None:
            self.bar.n = self.done
            self.bar.set_postfix_str(self.status(), refresh=False)
            self.bar.refresh()
