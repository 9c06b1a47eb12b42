"""The synchronous driver under the run shell: rows by env steps or time, checkpoints, resume.

Seeds train in groups (all of them in one vmapped state with ``vmap_seeds``, else one at a
time). ``make_advance(trainer)`` is one compiled program for every call length: ``advance(state,
n)`` runs ``n`` updates in a ``lax.while_loop`` (``n`` is traced) and returns the new state and
the sums a metrics row needs (``Totals``). Between calls, on the host, ``run_groups``:

* ends a row at every ``log_interval`` env steps (on the grid from env step 0, so a resumed
  run's rows fall where an uninterrupted run's do) and whenever ``log_seconds`` of training
  passed since the last row; a call is sized, from the measured update rate, to end at the
  next of those (and to last at most ``MAX_CALL_S``), so a cut run still has its curve;
* hands each row to the run's sink (metrics.csv grows with the run), with the mean return
  of a greedy evaluation (``eval_return``; ``a3c_jax.drivers.evaluation``) at the row at or
  after each multiple of ``eval_every`` env steps;
* checks the run's stop request (SIGINT, SIGTERM: ``a3c_jax.shell.signals``) and the early stop;
* checkpoints the whole ``TrainState`` every ``checkpoint_s`` seconds at a row boundary, and
  when a group ends or is interrupted (``a3c_jax.shell.checkpoints``), so a resumed group continues
  exactly: same parameters, optimiser state, environments and keys as if never stopped.

``wall_time_s`` counts from the end of compilation and continues across a resume; the time
evaluations take is left out of it (the clock is shifted by it).
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax.core import curves
from a3c_jax.drivers import records
from a3c_jax.drivers.evaluation import COLUMN, Evaluator
from a3c_jax.shell import checkpoints

MAX_CALL_S = 1.0
"""With ``log_seconds``, no compiled call is sized to last longer than this (responsive
stops)."""


class Totals(NamedTuple):
    """Sums over the updates of one call (per seed under vmap): ``curves.RowSums`` without
    the staleness, as float32 arrays (each signal summed and counted where not NaN)."""

    updates: jax.Array
    episodes: jax.Array
    return_sum: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    total_loss: jax.Array
    grad_norm: jax.Array = 0.0
    explained_variance: jax.Array = 0.0
    sigma: jax.Array = 0.0
    grad_norm_updates: jax.Array = 0.0
    explained_variance_updates: jax.Array = 0.0
    sigma_updates: jax.Array = 0.0


def add_signals(tot: Totals, m) -> Totals:
    """``tot`` with the signals of update metrics ``m`` added where they are not NaN."""
    new = {}
    for f in curves.SIGNALS:
        x, has = getattr(m, f), ~jnp.isnan(getattr(m, f))
        new[f] = getattr(tot, f) + jnp.where(has, x, 0.0)
        new[f + "_updates"] = getattr(tot, f + "_updates") + has
    return tot._replace(**new)


def make_advance(trainer) -> Callable:
    """``advance(state, n) -> (state, Totals)``: ``n`` updates of ``trainer`` (jittable)."""

    def advance(state, n):
        zero = Totals(*(jnp.zeros((), jnp.float32) for _ in Totals._fields))

        def body(carry):
            s, tot, i = carry
            s, m = trainer.update(s)
            ep = jnp.asarray(m.episodes, jnp.float32)
            ret = jnp.where(ep > 0, m.episode_return, 0.0) * ep
            tot = tot._replace(updates=tot.updates + 1, episodes=tot.episodes + ep,
                               return_sum=tot.return_sum + ret,
                               policy_loss=tot.policy_loss + m.policy_loss,
                               value_loss=tot.value_loss + m.value_loss,
                               entropy=tot.entropy + m.entropy,
                               total_loss=tot.total_loss + m.total_loss)
            return s, add_signals(tot, m), i + 1

        s, tot, _ = jax.lax.while_loop(lambda c: c[2] < n, body, (state, zero, jnp.int32(0)))
        return s, tot

    return advance


def over_seeds(advance: Callable, size: int) -> Callable:
    """``advance`` on states with a leading seed axis of ``size``: vmapped, except that a
    group of one runs unbatched (a vmapped convolution costs about a third more on XLA:CPU)."""
    if size > 1:
        return jax.vmap(advance, in_axes=(0, None))

    def one(state, n):
        out = advance(jax.tree.map(lambda x: x[0], state), n)
        return jax.tree.map(lambda x: x[None], out)

    return one


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
    (final parameters per seed, compile seconds, interrupted, divergence: ``nonfinite``
    skipped updates per seed and ``diverged``, the message of the first seed with
    ``max_nonfinite`` in a row, checked after each call, or None)."""
    c = trainer.config
    spu, total = trainer.steps_per_update, trainer.num_updates
    chunk = max(records.log_interval(c) // spu, 1)
    label = records.row_label(c)
    init = jax.jit(jax.vmap(trainer.init))
    advance = make_advance(trainer)
    compiled: dict[int, Callable] = {}
    params: dict = {}
    compile_s, interrupted = 0.0, False
    divergence: dict = {"nonfinite": {}, "diverged": None}
    for group in seed_groups(c):
        if interrupted or divergence["diverged"] or should_stop():
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
                compiled[len(group)] = jax.jit(over_seeds(advance, len(group))).lower(
                    state, jnp.int32(1)).compile()
            compile_s += time.perf_counter() - t
            step = compiled[len(group)]
            rd.sink.phase("train")
            evaluator = Evaluator(c, seeds=len(group))
            last_eval = evaluator.index(_env_steps(state).max()) if evaluator.enabled else 0
            acc, rate, t0 = None, None, time.perf_counter()
            row_t = t0

            def emit(now) -> float:
                """Hand the open rows to the sink, with a greedy evaluation when one is due;
                returns the seconds it took (kept out of ``wall_time_s``)."""
                nonlocal last_eval
                # env steps taken (fewer than done * spu with until-terminal segments)
                steps = _env_steps(state)
                rows = [seed_row(label, s, acc, i, int(steps[i]), wall0 + now - t0)
                        for i, s in enumerate(group)]
                t = evaluator.seconds
                if evaluator.enabled and evaluator.index(steps.max()) > last_eval:
                    last_eval = evaluator.index(steps.max())
                    got = evaluator.returns(state.params, group, last_eval)
                    for row, value in zip(rows, got):
                        row[COLUMN] = float(value)
                rd.sink.add_rows(rows)
                return evaluator.seconds - t

            try:
                while done < total:
                    if should_stop():
                        interrupted = True
                        break
                    n = min(chunk - done % chunk, total - done)
                    if c.log_seconds > 0:
                        left = min(row_t + c.log_seconds - time.perf_counter(), MAX_CALL_S)
                        n = min(n, max(1, int(rate * max(left, 0.0)))) if rate else 1
                    t_call = time.perf_counter()
                    state, tot = step(state, np.int32(n))  # np: jnp.int32 is an op
                    tot = jax.device_get(tot)
                    now = time.perf_counter()
                    rate = n / max(now - t_call, 1e-6)
                    done += n
                    acc = tot if acc is None else jax.tree.map(np.add, acc, tot)
                    bad = np.flatnonzero(skipped(state)[0] >= c.max_nonfinite)
                    if bad.size:
                        at = np.asarray(jax.device_get(state.env_steps)).reshape(-1)
                        divergence["diverged"] = (
                            f"diverged: seed {group[bad[0]]}: {c.max_nonfinite} consecutive "
                            f"non-finite gradients by env step {int(at[bad[0]])}")
                        stopped = True
                        break
                    if (done % chunk == 0 or done == total
                            or (c.log_seconds > 0 and now - row_t >= c.log_seconds)):
                        paused = emit(now)
                        t0 += paused
                        acc, row_t = None, now + paused
                        if c.stop_return and all(records.reached(rd.sink.rows, s, c)
                                                 for s in group):
                            stopped = True
                            break
                        if rd.checkpoint_due():
                            _checkpoint(rd, group, state, done, wall0 + now - t0, resumes)
            except KeyboardInterrupt:   # Python's own Ctrl-C, where no handler is installed
                interrupted = True
                done = int(np.asarray(jax.device_get(state.update)).reshape(-1)[0])
            now = time.perf_counter()
            if acc is not None:   # the rows of an interrupted run end where it stopped
                t0 += emit(now)
            wall0 += now - t0
        if rd.path is not None:
            _checkpoint(rd, group, state, done, wall0, resumes,
                        finished=done >= total, stopped=stopped)
        final = jax.device_get(state.params)
        total_skipped = skipped(state)[1]
        for i, seed in enumerate(group):
            params[seed] = jax.tree.map(lambda x, i=i: x[i], final)
            divergence["nonfinite"][seed] = int(total_skipped[i])
    return params, compile_s, interrupted, divergence


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
