"""The synchronous driver under the run shell: rows by env steps or time, checkpoints, resume.

Seeds train in groups (all of them in one vmapped state with ``vmap_seeds``, else one at a
time). A compiled call (``a3c_jax.shell.calls``: one program for every plan) advances a
group by several metrics rows at once and returns each row's sums; the host issues few of
them, each sized from the measured update rate to last about ``CALL_S`` seconds
(``calls.plan_call``), and between calls ``run_groups``:

* ends a row at every ``log_interval`` env steps (on the grid from env step 0, so a resumed
  run's rows fall where an uninterrupted run's do; a row's sums are the same, bit for bit,
  however the calls are sized) and, with ``log_seconds``, when that much training time
  passed since the last row: such a row ends a call, sized to end then when no grid row
  would (at most ``CALL_S``), so a cut run still has its curve;
* stamps each row with its ``wall_time_s``: measured for the row that ends a call, for the
  rows before it within the call interpolated linearly in updates over the call's time;
* hands each row to the run's sink (metrics.csv grows with the run), with the mean return
  of a greedy evaluation (``eval_return``; ``a3c_jax.drivers.evaluation``) at the row at or
  after each multiple of ``eval_every`` env steps: a call ends at the first row that may reach
  the next multiple, so the evaluation sees that row's parameters;
* checks the run's stop request (SIGINT, SIGTERM: ``a3c_jax.shell.signals``) before each
  call and after each row it hands on, so a request stops the run at the end of the first row
  handed on after it arrives, or, arriving during a call, at that call's end (within about
  ``CALL_S``, or one row when rows are by env steps only and longer);
* stops at the end of the row where the early stop is reached, or where a seed has
  ``max_nonfinite`` non-finite gradients in a row;
* when a run stops at a row that is not its call's last, makes the call again from its start
  up to that row (same keys, so the same updates; its time is left out of ``wall_time_s``):
  the state, checkpoint and parameters are those of that row;
* checkpoints the whole ``TrainState`` once ``checkpoint_s`` seconds passed, at the end of a
  call that ends a row, and when a group ends or is interrupted (``a3c_jax.shell.checkpoints``),
  so a resumed group continues exactly: same parameters, optimiser state, environments and
  keys as if never stopped.

``wall_time_s`` counts from the end of compilation and continues across a resume; the time
evaluations take is left out of it (the clock is shifted by it).
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax import _xla
from a3c_jax.core import curves
from a3c_jax.drivers import records
from a3c_jax.drivers.evaluation import COLUMN, Evaluator
from a3c_jax.shell import calls, checkpoints
from a3c_jax.shell.calls import Totals  # noqa: F401 - re-exported: the rows' sums

CALL_S = 0.5
"""A compiled call is sized, from the measured update rate, to last about this long (whole
rows; with ``log_seconds``, also to end by the next row by time)."""


def seed_groups(config) -> list[tuple[int, ...]]:
    return [tuple(config.seeds)] if config.vmap_seeds else [(s,) for s in config.seeds]


def seed_row(label: str, seed: int, tot: Totals, i: int, env_steps: int, wall: float) -> dict:
    """One metrics.csv row from the ``i``-th seed's sums (``curves.metrics_row``)."""
    sums = curves.RowSums(**{f: float(getattr(tot, f)[i]) for f in Totals._fields})
    return curves.metrics_row(label, seed, env_steps, wall, sums)


def _restore(state, entries: list[dict]):
    leaves = [np.stack(xs) for xs in zip(*(checkpoints.sync_leaves(e) for e in entries))]
    return checkpoints.from_host(state, leaves)


def skipped(state) -> tuple[np.ndarray, np.ndarray]:
    """Per seed of a group's state: (consecutive, total) updates skipped for a non-finite
    gradient (``TrainState.nonfinite``, ``nonfinite_total``)."""
    return (np.asarray(jax.device_get(state.nonfinite)).reshape(-1),
            np.asarray(jax.device_get(state.nonfinite_total)).reshape(-1))


def run_groups(trainer, rd, should_stop: Callable[[], bool] = lambda: False
               ) -> tuple[dict, float, bool, dict]:
    """Train every group of seeds of ``trainer.config`` feeding ``rd`` (a ``directory.RunDir``);
    (final parameters per seed, compile seconds, interrupted, a dict: ``nonfinite`` skipped
    updates per seed, ``diverged`` (the message of the first seed with ``max_nonfinite`` in a
    row, or None), ``calls`` and ``call_s``: compiled calls made and the seconds they took)."""
    c = trainer.config
    spu, total = trainer.steps_per_update, trainer.num_updates
    chunk = max(records.log_interval(c) // spu, 1)
    label = records.row_label(c)
    init = jax.jit(jax.vmap(trainer.init))
    compiled: dict[int, Callable] = {}
    params: dict = {}
    compile_s, interrupted = 0.0, False
    info: dict = {"nonfinite": {}, "diverged": None, "calls": 0, "call_s": 0.0}
    for group in seed_groups(c):
        if interrupted or info["diverged"] or should_stop():
            interrupted = True
            break
        state = init(jax.vmap(jax.random.key)(jnp.asarray(group)))
        entries = [rd.entry(s) for s in group]
        resumed = all(e is not None for e in entries)
        if resumed:
            state = _restore(state, entries)
        resumes = max(e["resumes"] + 1 for e in entries) if resumed else 0
        wall0 = max(e["wall_time_s"] for e in entries) if resumed else 0.0
        stopped = resumed and all(e["stopped"] for e in entries)
        state = trainer.shard(state, batch_axis=1)
        done = int(np.asarray(jax.device_get(state.update)).reshape(-1)[0])
        if done < total and not stopped:
            t = time.perf_counter()
            if len(group) not in compiled:
                program = jax.jit(calls.make_rows(trainer, len(group)))
                try:   # a signal stops the wait at once (``_xla.interruptible``)
                    compiled[len(group)] = _xla.interruptible(
                        lambda: program.lower(state, *calls.padded([1])).compile(), should_stop)
                except KeyboardInterrupt:
                    interrupted = True
                    break
            compile_s += time.perf_counter() - t
            step = compiled[len(group)]
            rd.sink.phase("train")
            evaluator = Evaluator(c, seeds=len(group))
            last_eval = evaluator.index(_env_steps(state).max()) if evaluator.enabled else 0
            acc, rate, t0 = None, None, time.perf_counter()
            row_t = t0

            def emit(steps, at, params=None) -> float:
                """Hand the open rows, ending at env steps ``steps`` (per seed; fewer than
                done * spu with until-terminal segments) and clock ``at``, to the sink, with a
                greedy evaluation of ``params`` when one is due; returns the seconds it took
                (kept out of ``wall_time_s``)."""
                nonlocal last_eval
                rows = [seed_row(label, s, acc, i, int(steps[i]), wall0 + at - t0)
                        for i, s in enumerate(group)]
                t = evaluator.seconds
                if (params is not None and evaluator.enabled
                        and evaluator.index(steps.max()) > last_eval):
                    last_eval = evaluator.index(steps.max())
                    got = evaluator.returns(params, group, last_eval)
                    for row, value in zip(rows, got):
                        row[COLUMN] = float(value)
                rd.sink.add_rows(rows)
                return evaluator.seconds - t

            try:
                while done < total:
                    if should_stop():
                        interrupted = True
                        break
                    secs = CALL_S
                    if c.log_seconds > 0:
                        secs = min(secs, max(row_t + c.log_seconds - time.perf_counter(), 0.0))
                    eval_at = (-(-(last_eval + 1) * evaluator.every // spu)
                               if evaluator.enabled else None)
                    plan = calls.plan_call(done, total, chunk,
                                           max(1, int(rate * secs)) if rate else 0,
                                           c.log_seconds > 0, eval_at)
                    before, t_call = state, time.perf_counter()
                    state, out = step(state, *calls.padded(plan))
                    out = jax.device_get(out)
                    now = time.perf_counter()
                    info["calls"] += 1
                    info["call_s"] += now - t_call
                    rate = sum(plan) / max(now - t_call, 1e-6)
                    ends = np.cumsum(plan)
                    cut = None
                    for r, n in enumerate(plan):
                        done += n
                        tot = jax.tree.map(lambda x, r=r: x[r], out.totals)
                        acc = tot if acc is None else jax.tree.map(np.add, acc, tot)
                        last = r == len(plan) - 1
                        bad = np.flatnonzero(out.nonfinite[r] >= c.max_nonfinite)
                        if bad.size:
                            info["diverged"] = (
                                f"diverged: seed {group[bad[0]]}: {c.max_nonfinite} consecutive "
                                f"non-finite gradients by env step {int(out.env_steps[r][bad[0]])}")
                            stopped, cut = True, r
                            break
                        at = t_call + (now - t_call) * ends[r] / ends[-1]
                        if (done % chunk == 0 or done == total
                                or (last and c.log_seconds > 0 and now - row_t >= c.log_seconds)):
                            paused = emit(out.env_steps[r], at, state.params if last else None)
                            t0 += paused
                            acc, row_t = None, at + paused
                            if c.stop_return and all(records.reached(rd.sink.rows, s, c)
                                                     for s in group):
                                stopped, cut = True, r
                                break
                            if last and rd.checkpoint_due():
                                _checkpoint(rd, group, state, done, wall0 + now - t0, resumes)
                            if not last and should_stop():
                                interrupted, cut = True, r
                                break
                    if cut is not None:
                        if cut < len(plan) - 1:   # the call ran past the row the run stops at
                            t = time.perf_counter()
                            state = jax.block_until_ready(
                                step(before, *calls.padded(plan[:cut + 1]))[0])
                            t0 += time.perf_counter() - t
                        break
            except KeyboardInterrupt:   # Python's own Ctrl-C, where no handler is installed
                interrupted = True
                done = int(np.asarray(jax.device_get(state.update)).reshape(-1)[0])
            now = time.perf_counter()
            if acc is not None:   # the rows of an interrupted run end where it stopped
                t0 += emit(_env_steps(state), now, state.params)
            wall0 += now - t0
        if rd.path is not None:
            _checkpoint(rd, group, state, done, wall0, resumes,
                        finished=done >= total, stopped=stopped)
        final = jax.device_get(state.params)
        total_skipped = skipped(state)[1]
        for i, seed in enumerate(group):
            params[seed] = jax.tree.map(lambda x, i=i: x[i], final)
            info["nonfinite"][seed] = int(total_skipped[i])
    return params, compile_s, interrupted, info


def _env_steps(state) -> np.ndarray:
    """[seeds] env steps taken by each seed of a group's state."""
    return np.asarray(jax.device_get(state.env_steps)).reshape(-1)


def _checkpoint(rd, group, state, done: int, wall: float, resumes: int,
                finished: bool = False, stopped: bool = False) -> None:
    leaves = checkpoints.to_host(state)
    p = jax.device_get(state.params)
    steps = np.asarray(jax.device_get(state.env_steps)).reshape(-1)
    rd.checkpoint({seed: (checkpoints.sync_entry([x[i] for x in leaves], int(steps[i]), done,
                                                 wall, resumes, finished, stopped),
                          jax.tree.map(lambda x, i=i: x[i], p))
                   for i, seed in enumerate(group)})
