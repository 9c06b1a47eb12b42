"""Driving the emulator (``a3c_jax.drivers.emulated.program``): runs with records, and sweeps in one call.

Every (seed, staleness schedule) pair runs in a ``Batch``: one program ``vmap``-ped over
pairs, compiled before the clock starts, its scan cut into chunks for progress, wall-clock
time and early stops. The same batch gives bit-identical results on every call. A pair's
float rounding may depend on the batch around it (its size, its lane: XLA:CPU vectorises
across the batch axis), so the same seed run alone and inside a sweep follows statistically
equivalent trajectories that are not bit-identical (rounding differences grow over training).

* ``run_seeds(config)``: the ``--backend emulated`` run. Each seed's schedule is drawn from
  ``config.staleness`` before anything compiles; chunks of ``log_interval`` env steps (at
  least ``MIN_CHUNK`` updates);
  the early stop is ``records.StopMonitor`` (exact) per seed, and the batch stops when every
  seed has reached it; between chunks, the greedy evaluations (``eval_every``) that fell due
  (``EmulatedRun.evals``; their time is left out of the clock). Each update becomes an ``UpdateRecord`` (worker, versions read and
  written, the tau used...), so metrics.csv and updates.csv are written as for the other
  asynchronous backends; within a chunk, wall time is interpolated linearly.
* ``sweep(config, models, seeds)``: every (model, seed) pair in one batch per block size
  (usually one); returns per-update returns and env steps to ``threshold`` per pair, and
  stops once every pair of a batch has reached it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax import _xla
from a3c_jax.core import curves
from a3c_jax.core import staleness
from a3c_jax.config.schema import Resolved
from a3c_jax.drivers.emulated.program import Emulator, EmuOut, Plan
from a3c_jax.drivers.evaluation import Evaluator, Pending
from a3c_jax.drivers.records import StopMonitor, UpdateRecord, log_interval, staleness_summary

MIN_CHUNK = 1_000   # updates per call at least: a call costs a host round trip


class Batch:
    """(seed, schedule) pairs run together (see the module docstring)."""

    def __init__(self, emu: Emulator, plan: Plan, seeds: Sequence[int],
                 schedules: Sequence[tuple[np.ndarray, np.ndarray]], chunk_updates: int,
                 cache: dict | None = None):
        """``schedules``: (taus, worker order) per pair (``staleness.schedule``, ``order``)."""
        self.emu, self.plan, self.size = emu, plan, len(seeds)
        self.taus, self.workers, self.valid = (
            np.stack(x) for x in zip(*(plan.blocks(*s) for s in schedules)))
        self.state = jax.jit(jax.vmap(lambda s: emu.init(s, plan)))(jnp.asarray(seeds))
        self.chunk = max(chunk_updates // plan.block, 1)
        step = jax.jit(jax.vmap(emu.run_chunk))
        cache = {} if cache is None else cache   # (blocks, pairs) -> compiled, one plan
        t = time.perf_counter()
        for n in {min(self.chunk, plan.num_blocks), plan.num_blocks % self.chunk or self.chunk}:
            if (n, len(seeds)) not in cache:   # a signal's handler runs meanwhile
                cache[n, len(seeds)] = _xla.interruptible(
                    lambda n=n: step.lower(self.state, self.taus[:, :n], self.workers[:, :n],
                                           self.valid[:, :n]).compile())
        self.compiled = {n: f for (n, size), f in cache.items() if size == len(seeds)}
        self.compile_s = time.perf_counter() - t
        self.paused_s = 0.0   # time spent between chunks that the clock leaves out

    def chunks(self) -> Iterator[tuple[int, EmuOut, float]]:
        """Run chunk after chunk; yields (first update index, the chunk's outputs on the host,
        [pairs, updates], seconds since the first chunk began)."""
        t0, done = time.perf_counter(), 0
        while done < self.plan.num_blocks:
            n = min(self.chunk, self.plan.num_blocks - done)
            sl = slice(done, done + n)
            self.state, out = self.compiled[n](self.state, self.taus[:, sl],
                                               self.workers[:, sl], self.valid[:, sl])
            out = jax.tree.map(np.asarray, jax.device_get(out))
            yield done * self.plan.block, out, time.perf_counter() - t0 - self.paused_s
            done += n

    def params(self) -> list[Any]:
        """The current parameters of each pair."""
        final = jax.device_get(jax.vmap(self.emu.params)(self.state))
        return [jax.tree.map(lambda a: a[k], final) for k in range(self.size)]


def own_index(order: np.ndarray) -> np.ndarray:
    """Each update's index among its worker's updates (the records' ``update``)."""
    order = np.asarray(order)
    idx = np.zeros(order.shape, np.int64)
    for w in np.unique(order):
        at = order == w
        idx[at] = np.arange(at.sum())
    return idx


def to_records(out: EmuOut, own: np.ndarray, spu: int, start: int,
               wall: tuple[float, float]) -> list[UpdateRecord]:
    """The records of one pair's chunk of outputs (first update index ``start``; ``own``:
    ``own_index`` of the pair's whole order), wall time interpolated over ``wall``."""
    ok = np.asarray(out.valid, bool)
    n = int(ok.sum())
    i = start + np.arange(n)
    tau = np.asarray(out.staleness)[ok]
    m = [np.asarray(x, np.float64)[ok] for x in out.metrics]
    t = wall[0] + (wall[1] - wall[0]) * (np.arange(n) + 1) / max(n, 1)
    bad = np.asarray(out.nonfinite, np.int64)[ok].tolist()
    cols = zip(np.asarray(out.worker)[ok].tolist(), own[i].tolist(),
               ((i + 1) * spu).tolist(), t.tolist(), (i - tau).tolist(), (i + 1).tolist(),
               tau.tolist(), *(x.tolist() for x in m))
    return [UpdateRecord(*c, nonfinite=b) for c, b in zip(cols, bad)]


class Streak:
    """Non-finite gradients of one seed: in all, and in a row; ``diverged`` (a message, as
    the other drivers word it) once ``limit`` came in a row."""

    def __init__(self, seed: int, limit: int):
        self.seed, self.limit = seed, limit
        self.total = self.run = 0
        self.diverged: str | None = None

    def add(self, recs: Sequence[UpdateRecord]) -> None:
        for r in recs:
            self.total += r.nonfinite
            self.run = self.run + 1 if r.nonfinite else 0
            if self.run >= self.limit and self.diverged is None:
                self.diverged = (f"diverged: seed {self.seed}: {self.limit} consecutive "
                                 f"non-finite gradients by env step {r.env_steps}")


@dataclasses.dataclass
class EmulatedRun:
    records: dict[int, list[UpdateRecord]]
    params: dict[int, Any]
    interrupted: bool = False
    extras: dict = dataclasses.field(default_factory=dict)
    evals: dict[int, Pending] = dataclasses.field(default_factory=dict)
    """Per seed, the greedy evaluations (``eval_every``) its rows are to show."""


def run_seeds(config: Resolved, loss_fn: Callable | None = None,
              on_progress: Callable[[int], None] | None = None,
              block: int | None = None,
              should_stop: Callable[[], Any] | None = None) -> EmulatedRun:
    """Train every seed of a resolved ``config`` on the emulator (see the module docstring);
    ``block`` overrides the block size (it must be exact for the schedules). ``should_stop``
    (not None: stop) is polled between chunks; a stop keeps what was gathered. A seed with
    ``max_nonfinite`` non-finite gradients in a row (none applied) ends the run at the end of
    that chunk: ``extras["diverged"]`` says which seed and env step, ``extras["nonfinite"]``
    counts the skipped updates per seed."""
    emu = Emulator(config, loss_fn)
    model = staleness.parse(config.staleness)
    W, n = config.workers, emu.num_updates
    scheds = {s: (staleness.schedule(model, n, W, s), staleness.order(model, n, W, s))
              for s in config.seeds}
    plan = emu.plan([t for t, _ in scheds.values()], [o for _, o in scheds.values()],
                    block or staleness.block_size(model, W))
    own = {s: own_index(o) for s, (_, o) in scheds.items()}
    groups = [tuple(config.seeds)] if config.vmap_seeds else [(s,) for s in config.seeds]
    run = EmulatedRun({s: [] for s in config.seeds}, {}, extras={
        "backend": "emulated", "staleness_model": model.label, "block": plan.block,
        "ring_size": plan.ring_size, "compile_s": 0.0, "staleness": {}, "nonfinite": {}})
    cache: dict = {}
    evaluator = Evaluator(config)
    run.evals = {s: Pending() for s in config.seeds}
    try:
        for group in groups:
            batch = Batch(emu, plan, group, [scheds[s] for s in group],
                          max(log_interval(config) // emu.spu, MIN_CHUNK), cache)
            run.extras["compile_s"] += batch.compile_s
            monitors = {s: StopMonitor(config.stop_return, config.stop_window) for s in group}
            streaks = {s: Streak(s, config.max_nonfinite) for s in group}
            wall = 0.0
            try:
                for start, out, now in batch.chunks():
                    for k, s in enumerate(group):
                        recs = to_records(jax.tree.map(lambda a: a[k], out), own[s],
                                          emu.spu, start, (wall, now))
                        run.records[s] += recs
                        streaks[s].add(recs)
                        for r in recs if config.stop_return else ():
                            monitors[s].add(r.env_steps, r.return_sum, r.episodes)
                    wall = now
                    if on_progress is not None:
                        on_progress(int(out.valid.sum()) * emu.spu)
                    diverged = [t.diverged for t in streaks.values() if t.diverged]
                    if diverged:   # checked per chunk: nothing non-finite was applied
                        run.extras["diverged"] = diverged[0]
                        break
                    if evaluator.enabled:
                        batch.paused_s += _evaluate(evaluator, batch, group, run)
                    if config.stop_return and all(m.fired_at is not None
                                                  for m in monitors.values()):
                        break
                    if should_stop is not None and should_stop() is not None:
                        raise KeyboardInterrupt
            finally:
                run.params.update(zip(group, batch.params()))
                run.extras["nonfinite"].update({s: t.total for s, t in streaks.items()})
            if "diverged" in run.extras:
                break
    except KeyboardInterrupt:
        run.interrupted = True
    for s, recs in run.records.items():
        run.extras["staleness"][s] = staleness_summary(recs)
    run.extras["eval_s"] = evaluator.seconds
    return run


def _evaluate(evaluator: Evaluator, batch: Batch, group: Sequence[int], run: EmulatedRun
              ) -> float:
    """The greedy evaluations due after a chunk, for each seed of ``group`` whose env steps
    passed a multiple of ``eval_every`` since its last one; returns the seconds taken."""
    t = time.perf_counter()
    steps = {s: run.records[s][-1].env_steps if run.records[s] else 0 for s in group}
    due = {s: evaluator.index(n) for s, n in steps.items()
           if evaluator.index(n) > evaluator.index(run.evals[s].last)}
    if due:
        params = dict(zip(group, batch.params()))
        for s, k in due.items():
            run.evals[s].add(steps[s], evaluator.returns(params[s], s, k))
    return time.perf_counter() - t


@dataclasses.dataclass
class Sweep:
    """Every (model, seed) pair of a sweep: per-update return sums and episode counts
    [models, seeds, updates] (zero past a batch's early stop), env steps to the threshold
    [models, seeds] (NaN: never), the mean tau used."""

    models: list[str]
    seeds: list[int]
    env_steps: np.ndarray
    return_sum: np.ndarray
    episodes: np.ndarray
    steps_to: np.ndarray
    mean_staleness: np.ndarray
    compile_s: float
    wall_s: float

    def smoothed(self, window: int) -> np.ndarray:
        """[models, seeds, updates] smoothed return (``curves.smoothed_returns``)."""
        ret = np.where(self.episodes > 0, self.return_sum / np.maximum(self.episodes, 1),
                       np.nan)
        return np.array([[curves.smoothed_returns(self.env_steps, r, e, window)
                          for r, e in zip(rr, ee)] for rr, ee in zip(ret, self.episodes)])


def sweep(config: Resolved, models: Sequence[str], seeds: Sequence[int], threshold: float,
          window: int = 10_000, chunk_steps: int = 50_000, stop_when_reached: bool = True,
          on_progress: Callable[[int], None] | None = None) -> Sweep:
    """Every (staleness model, seed) pair of a resolved ``config``, one batch per block size;
    a batch stops once all its pairs' smoothed returns have reached ``threshold``."""
    emu = Emulator(config)
    parsed = [staleness.parse(m) for m in models]
    W, M, S = config.workers, len(models), len(seeds)
    pairs = [(m, s) for m in range(M) for s in range(S)]
    n_up = emu.num_updates
    taus = {(m, s): staleness.schedule(parsed[m], n_up, W, seeds[s]) for m, s in pairs}
    orders = {(m, s): staleness.order(parsed[m], n_up, W, seeds[s]) for m, s in pairs}
    ret, eps = np.zeros((M, S, emu.num_updates)), np.zeros((M, S, emu.num_updates))
    steps_to, mean_tau = np.full((M, S), np.nan), np.zeros((M, S))
    compile_s = wall_s = 0.0
    longest = 0
    blocks = {m: staleness.block_size(parsed[m], W) for m in range(M)}
    for b in sorted(set(blocks.values())):
        group = [p for p in pairs if blocks[p[0]] == b]
        plan = emu.plan([taus[p] for p in group], [orders[p] for p in group], b)
        batch = Batch(emu, plan, [seeds[s] for _, s in group],
                      [(taus[p], orders[p]) for p in group],
                      max(chunk_steps // emu.spu, 1))
        compile_s += batch.compile_s
        idx = tuple(np.array(group).T)
        wall, n = 0.0, 0
        for start, out, wall in batch.chunks():
            k = int(out.valid[0].sum())
            ret[idx + (slice(n, n + k),)] = out.metrics.return_sum[:, :k]
            eps[idx + (slice(n, n + k),)] = out.metrics.episodes[:, :k]
            n += k
            if on_progress is not None:
                on_progress(k * emu.spu * len(group))
            steps = (np.arange(n) + 1) * emu.spu
            for m, s in group:
                r = np.where(eps[m, s, :n] > 0, ret[m, s, :n] / np.maximum(eps[m, s, :n], 1),
                             np.nan)
                sm = curves.smoothed_returns(steps, r, eps[m, s, :n], window)
                steps_to[m, s] = curves.steps_to_threshold(steps, sm, threshold)
            if stop_when_reached and np.isfinite(steps_to[idx]).all():
                break
        wall_s += wall
        longest = max(longest, n)
        for m, s in group:
            mean_tau[m, s] = taus[m, s][:n].mean()
    return Sweep(list(models), list(seeds), (np.arange(longest) + 1) * emu.spu,
                 ret[..., :longest], eps[..., :longest], steps_to, mean_tau, compile_s, wall_s)
