"""The progress display (a3c_jax.shell.progress) on rows fed by hand with a fake clock: phases shown
as such, the rate and ETA only once env steps were logged, the total over vmapped seeds,
plain lines at an interval when the output is not a terminal; and the summary line."""

from __future__ import annotations

import io
import math
import re
import types

import pytest

from a3c_jax.shell import progress
from a3c_jax.config.schema import Config


def row(seed, steps, wall, ret=10.0, episodes=2, staleness=0.0, algo="a2c"):
    return {"algo": algo, "seed": seed, "env_steps": steps, "wall_time_s": wall,
            "episode_return": ret, "episodes": episodes, "policy_loss": 0.1,
            "value_loss": 0.2, "entropy": 0.5, "total_loss": 0.3, "staleness": staleness}


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def display(config, terminal=False, interval_s=5.0):
    clock, out = Clock(), io.StringIO()
    d = progress.ProgressDisplay(config, stream=out, interval_s=interval_s, terminal=terminal,
                                 clock=clock)
    return d, clock, out


def test_plain_lines_tell_each_phase_apart():
    config = Config(total_steps=10_000, seeds=(0, 1), log_interval=1000, stop_window=2000)
    d, clock, out = display(config)
    d.phase("compile")
    clock.t += 7
    assert "compiling 7 s" == d.status()
    d.phase("train")
    text = out.getvalue()
    assert "compiling (no env steps yet" in text and "compiled and initialised in 7.0 s" in text
    assert "steps/s" not in text and "ETA" not in text      # nothing measured yet
    assert text.strip().endswith("0/20k env steps (0%), warming up")
    for i in range(1, 6):           # one batch of rows per 2 s; a line every 5 s
        clock.t += 2
        d.rows([row(0, 1000 * i, 0.5 * i, ret=100.0 * i), row(1, 1000 * i, 0.5 * i,
                                                                   ret=100.0 * i + 50)])
    lines = out.getvalue().strip().splitlines()[3:]
    # a line 5 s after the last one (t = 6 s): from the first rows (2k at 2 s) 1k env steps/s,
    # 14k left -> ETA 0:14; return: each seed's rows in its last 2000 steps (250, 300)
    assert lines == ["a2c CartPole-v1: 6k/20k env steps (30%), 1k env steps/s, ETA 0:14, "
                     "return 275"], lines
    assert d.recent_return() == pytest.approx((450 + 500) / 2)
    d.close()
    assert re.search(r"10k/20k env steps \(50%\) in 0:10, 1k env steps/s, return 475$",
                     out.getvalue().strip())


def test_first_rows_end_the_compile_phase_when_no_driver_says_so():
    config = Config(algo="a3c", backend="processes", total_steps=8000, workers=2)
    d, clock, out = display(config)
    d.phase("compile")
    clock.t += 12
    d.rows([row(0, 500, 0.5, staleness=1.0, algo="a3c")])
    assert "compiled and warmed up in 12.0 s" in out.getvalue()
    assert d.status() == "warming up"                      # one measurement is not a rate
    clock.t += 1
    d.rows([row(0, 1500, 1.5, staleness=3.0, algo="a3c")])
    assert d.rate() == pytest.approx(1000.0)
    assert d.status().endswith("staleness 2")              # async runs show staleness
    assert "ETA 0:06" in d.status()


def test_terminal_bar_counts_steps_of_all_seeds():
    config = Config(total_steps=4000, seeds=(0, 1, 2), log_interval=1000)
    d, clock, out = display(config, terminal=True)
    d.phase("compile")
    assert d.bar is None                                   # no bar while compiling
    d.phase("train")
    assert d.bar.total == 12_000
    clock.t += 1
    d.rows([row(s, 1000, 0.5) for s in range(3)])
    clock.t += 1
    d.rows([row(s, 2000, 1.0) for s in range(3)])
    assert d.bar.n == 6000
    assert "3k env steps/s" in out.getvalue() and "return 10" in out.getvalue()
    d.close()
    assert d.bar is None


def test_threshold_hit_is_the_first_smoothed_crossing():
    rows = [row(0, 1000 * i, 0.1 * i, ret=r) for i, r in enumerate([10, 20, 80, 90, 100], 1)]
    # window 2000 steps: smoothed 10, 15, 50, 85, 95 -> 80 first reached at 4000 steps, 0.4 s
    assert progress.threshold_hit(rows, 80.0, 2000) == (4000.0, pytest.approx(0.4))
    assert all(math.isnan(x) for x in progress.threshold_hit(rows, 200.0, 2000))


def test_summary_line(tmp_path):
    config = Config(total_steps=5000, seeds=(0, 1), stop_return=80.0, stop_window=2000)
    rows = [row(s, 1000 * i, 0.1 * i, ret=r + 10 * s)
            for s in (0, 1) for i, r in enumerate([10, 20, 80, 90, 100], 1)]
    result = types.SimpleNamespace(config=config, rows=rows, interrupted=False,
                                   run_dir=tmp_path, extras={"compile_s": 2.5})
    line = progress.summary_line(result)
    assert line.startswith("done: a2c on CartPole-v1, 2/2 seeds, 5k env steps per seed in "
                           "0.5 s (+2.5 s compiling and initialising)")
    assert "final return 105 (seeds from 100 to 110)" in line   # last 10%: the last row
    # smoothed over 2000 steps: seed 0 50 then 85, seed 1 60 then 95: both at 4000, 0.4 s
    assert "80 reached by 2/2 at 4k env steps, 0.4 s (mean)" in line
    assert line.endswith(f"files in {tmp_path}/ ()")         # names only what exists
    for name in ("config.json", "metrics.csv"):
        (tmp_path / name).write_text("x")
    assert progress.summary_line(result).endswith(
        f"files in {tmp_path}/ (metrics.csv, config.json)")
    result.interrupted, result.rows = True, []
    assert progress.summary_line(result).startswith("interrupted: ")
    assert "no episode finished" in progress.summary_line(result)


def test_rows_that_all_come_at_once_claim_no_rate():
    """One jitted program (the emulated backend) logs every row at the end: no rate is made
    up from them, and nothing says it is still warming up."""
    config = Config(algo="a3c", backend="emulated", total_steps=2000)
    d, clock, out = display(config)
    d.phase("compile")
    clock.t += 9
    d.rows([row(0, 1000, 0.1, algo="a3c"), row(0, 2000, 0.2, algo="a3c")])
    d.close()
    text = out.getvalue()
    assert "compiled and warmed up in 9.0 s" in text and "steps/s" not in text
    assert text.strip().endswith("2k/2k env steps (100%) in 0:00, no rate: every row came at once")
    assert "warming up" not in text.replace("warmed up", "")


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_the_summary_and_the_display_give_one_compile_time(backend):
    """The display's "compiled and initialised in X s" and the summary line's "+X s compiling
    and initialising" are the same span (the processes backend's workers compile apart, and
    their first rows end it), never 0.0 s for a backend that compiles in its workers."""
    from a3c_jax.shell.runner import run

    config = Config(algo="a3c", workers=2, backend=backend, total_steps=2000, hidden=(8,),
                    progress=False)
    out = io.StringIO()
    result = run(config, write=False, subscribers=[progress.ProgressDisplay(
        config, stream=out, terminal=False)])
    shown = re.search(r"compiled and (?:initialised|warmed up) in ([\d.]+) s", out.getvalue())
    summary = re.search(r"\+([\d.]+) s compiling and initialising",
                        progress.summary_line(result))
    assert shown and summary and float(summary.group(1)) > 0.0
    assert abs(float(shown.group(1)) - float(summary.group(1))) <= 0.1
