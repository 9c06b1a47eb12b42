"""The asynchronous supervisor under the run shell: streamed curves, checkpoints, resume.

``run_seed`` trains one seed with ``supervisor.train_seed`` and, at every tick of its wait:

* stops it (as Ctrl-C does) when the run's stop request is set (SIGINT or SIGTERM,
  ``a3c_jax.shell.signals``): the tick is a safe point;
* bins the complete prefix of the records that arrived (``binning.StreamBinner``: the rows are
  exactly those binning every record afterwards gives) into the run's sink, and passes every
  new record on as an ``updates.csv`` row;
* when the store's step counter passed a multiple of ``eval_every``, evaluates a snapshot of
  the store's parameters greedily in this process while the workers run on
  (``a3c_jax.drivers.evaluation``); the row at or after that step shows it (``eval_return``);
* every ``checkpoint_s`` seconds, checkpoints a lock-free snapshot of the store
  (``a3c_jax.shell.checkpoints``; what a resume restores exactly is said in
  ``a3c_jax.drivers.asynchronous.store_state``).

When the seed ends (budget, early stop, divergence, interruption, failure) the rest of its
records are binned and the store's final state is checkpointed, unless its parameters are not
finite (the last finite checkpoint stays). A resumed seed starts its store from the
checkpoint, continues its records' clock (``wall_time_s``) and per-worker update indices.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from a3c_jax.drivers import binning, records
from a3c_jax.drivers.evaluation import Evaluator, Pending
from a3c_jax.drivers.asynchronous.backends.launch import Launch
from a3c_jax.drivers.asynchronous.store_state import ResumePoint
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import Diverged
from a3c_jax.shell import checkpoints
from a3c_jax.shell.signals import Interrupted


@dataclasses.dataclass
class SeedOutcome:
    params: object | None            # final parameters (pytree), None if none were made
    stopped: BaseException | None    # KeyboardInterrupt / WorkerError, as train_seed gives
    staleness: dict
    lost: dict
    nonfinite: int = 0               # updates skipped for a non-finite gradient
    eval_s: float = 0.0              # seconds its greedy evaluations took (workers ran on)
    restarts: list = dataclasses.field(default_factory=list)   # worker processes restarted


def resume_points(config, rd) -> dict[int, ResumePoint]:
    """Where each seed with a checkpoint resumes (``store_state.ResumedWorker``)."""
    return {s: ResumePoint(e["resumes"] + 1, e["env_steps"])
            for s in config.seeds if (e := rd.entry(s)) is not None}


def run_seed(worker, seed: int, rd, loss_fn=None,
             should_stop: Callable[[], int | None] = lambda: None) -> SeedOutcome:
    """One seed of an asynchronous run (module docstring)."""
    c = worker.config
    entry = rd.entry(seed)
    if entry is not None and (entry["stopped"] or entry["env_steps"] >= c.total_steps):
        return SeedOutcome(worker.unravel(entry["store"]["params"]), None, {}, {})
    wall0 = entry["wall_time_s"] if entry else 0.0
    resumes = entry["resumes"] + 1 if entry else 0
    offsets = ({int(w): n for w, n in entry["worker_updates"].items()} if entry else {})

    def shift(r):
        return r._replace(wall_time_s=r.wall_time_s + wall0,
                          update=r.update + offsets.get(r.worker, 0))

    # records are forgotten once binned and streamed to updates.csv: memory stays flat
    per_worker = [binning.RecordLog() for _ in range(c.workers)]
    evaluator, pending = Evaluator(c), Pending()
    last_eval = evaluator.index(entry["env_steps"]) if entry and evaluator.enabled else 0
    binner = binning.StreamBinner(
        per_worker, records.row_builder(c, seed),
        lambda rows: rd.sink.add_rows(pending.attach(rows)),
        on_records=lambda rs: rd.sink.add_updates(records.update_rows(seed, rs)),
        transform=shift)

    def counts() -> list[int]:
        return [offsets.get(w, 0) + len(rs) for w, rs in enumerate(per_worker)]

    def wall() -> float:
        return binner.tally.wall_time_s if binner.tally.count else wall0

    def save(store: dict, done: bool, stopped: bool = False) -> None:
        rd.checkpoint({seed: (checkpoints.async_entry(store, counts(), wall(), resumes, done,
                                                      stopped),
                              worker.unravel(store["params"]))})

    def evaluate(T: int, read_flat: Callable) -> None:
        """A greedy evaluation of the parameters ``read_flat()`` gives when one is due at
        step ``T`` (while the workers run, a snapshot of the store: its time is not taken
        out of their clock, and is reported as ``eval_s``)."""
        nonlocal last_eval
        at = min(T, c.total_steps)
        if not evaluator.enabled or evaluator.index(at) <= last_eval:
            return
        last_eval = evaluator.index(at)
        pending.add(at, evaluator.returns(worker.unravel(read_flat()), seed, last_eval))

    def on_tick(running: Launch, _per_worker) -> None:
        signum = should_stop()
        if signum is not None:
            raise Interrupted(signum)
        evaluate(running.T, lambda: running.store_state()["params"])
        binner.poll()
        if rd.checkpoint_due():
            save(running.store_state(), False)

    got = train_seed(worker, seed, loss_fn=loss_fn, per_worker=per_worker,
                     on_tick=on_tick, restore=entry["store"] if entry else None)
    if got.flat_params is not None:   # the last one falls after the last tick
        evaluate(got.T, lambda: got.flat_params)
    binner.finish()
    if got.store is not None and rd.path is not None:
        diverged = isinstance(got.stopped, Diverged)
        stopped_early = (got.stopped is None and got.T < c.total_steps) or diverged
        save(got.store, got.stopped is None, stopped_early)
    params = worker.unravel(got.flat_params) if got.flat_params is not None else None
    restarts = [{**e, "time_s": e["time_s"] + wall0} for e in got.restarts]   # records' clock
    return SeedOutcome(params, got.stopped, binner.tally.staleness(),
                       got.lost, binner.tally.nonfinite,
                       evaluator.seconds, restarts)

