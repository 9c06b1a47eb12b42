"""Run an experiment from a Config: the impure shell around the drivers.

``run(config)`` validates the config, resolves its per-method defaults **once**
(``defaults.resolve``), checks the run directory's options before anything compiles
(``directory.prepare``: bad input raises ``InvalidInput``, a ``ValueError``, and touches
nothing), trains every seed on the synchronous driver (``a3c_jax.shell.synchronous`` over
``a3c_jax.drivers.synchronous``) or on asynchronous workers (``a3c_jax.shell.asynchronous``
over ``a3c_jax.drivers.asynchronous.supervisor``), shows progress (a row subscriber,
``progress.ProgressDisplay``), and keeps the run directory current (see
``a3c_jax.shell.directory``): run.json (status, versions, machine, command line), config.json
(resolved), metrics.csv and updates.csv appended as rows are logged, periodic checkpoints
(``resume`` continues from them), final parameters and a plot.

Rows: every driver feeds the run's ``sink.RowSink`` as rows are logged (sync: when a row
closes; async: the complete prefix of the records, binned as they arrive). Any object with a
``rows(rows)`` method (and optionally ``updates(rows)``, ``flush()``, ``close()``) passed in
``run(..., subscribers=[...])`` receives the same rows at the same time as metrics.csv: this
is the hook for a progress display or a TensorBoard writer.

Signals: SIGINT (Ctrl-C) and SIGTERM stop training at the next safe point on every backend
(``a3c_jax.shell.signals``); what was gathered is written, run.json says "interrupted" and which
signal (``RunResult.extras["signal"]``), and a second signal exits at once. A failing worker's
error is re-raised after the run directory is written (run.json: "failed").

``wall_time_s`` counts from the end of compilation (``compile_s`` in ``RunResult.extras``).
With ``vmap_seeds`` the sync driver trains all seeds in one call, so their wall-clock time is
shared; wall-clock comparisons use ``vmap_seeds=False`` (what ``budget.matched_pair`` sets).
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from a3c_jax import _xla
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config, Resolved
from a3c_jax.core import curves
from a3c_jax.drivers import records
from a3c_jax.shell import directory, figure, files, info, loggers, signals
from a3c_jax.shell.directory import InvalidInput  # noqa: F401 - re-exported: bad input, exit 2


@dataclasses.dataclass
class RunResult:
    config: Resolved
    run_dir: Path | None
    rows: list[dict]                 # metrics.csv rows
    params: dict[int, Any]           # final parameters per seed
    interrupted: bool = False
    kept_updates: list[dict] | None = None   # None: in the run's updates.csv only
    extras: dict = dataclasses.field(default_factory=dict)

    @property
    def update_rows(self) -> list[dict]:
        """updates.csv's rows: those kept in memory (a run without a directory, the emulated
        backend), else read back once from the run's updates.csv (its columns only): a long
        run does not hold one row per update while it trains."""
        if self.kept_updates is None:
            path = Path(self.config.out) / "updates.csv"
            if self.run_dir is None or not path.exists():
                return []
            self.kept_updates = [info.typed_row(r, "updates.csv") for r in files.read_csv(path)]
        return self.kept_updates


def _no_stop() -> int | None:
    return None


def run_sync(config: Config, loss_fn: Callable | None = None,
             rd: directory.RunDir | None = None,
             should_stop: Callable[[], int | None] = _no_stop) -> RunResult:
    """Train every seed of a resolved config on the synchronous driver."""
    from a3c_jax.drivers.synchronous import SyncTrainer
    from a3c_jax.shell.synchronous import run_groups

    rd = rd if rd is not None else directory.RunDir(config, None, {})
    trainer = SyncTrainer(config, loss_fn)
    with trainer.device_scope():
        params, compile_s, interrupted, divergence = run_groups(trainer, rd,
                                                                should_stop=should_stop)
    return RunResult(config=config, run_dir=None, rows=rd.sink.rows, params=params,
                     interrupted=interrupted, extras={"compile_s": compile_s, **divergence})


def run_async(config: Config, loss_fn: Callable | None = None,
              rd: directory.RunDir | None = None,
              should_stop: Callable[[], int | None] = _no_stop) -> RunResult:
    """Train every seed of a resolved config with asynchronous workers on ``config.backend``;
    returns the result and the failure (a worker's error) if one stopped the run."""
    import time

    from a3c_jax.shell.asynchronous import resume_points, run_seed
    from a3c_jax.drivers.asynchronous.store_state import ResumedWorker
    from a3c_jax.drivers.asynchronous.worker import Diverged

    rd = rd if rd is not None else directory.RunDir(config, None, {})
    worker = ResumedWorker(config, loss_fn, resume_points(config, rd))
    for seed in config.seeds:
        entry = rd.entry(seed)
        if entry is not None and entry["store"]["params"].shape != (worker.num_params,):
            raise InvalidInput(f"resume: the checkpoint of seed {seed} holds "
                               f"{entry['store']['params'].shape[0]} parameters where this "
                               f"config's network has {worker.num_params}")
    t_compile = time.perf_counter()
    interrupted = False
    if config.backend == "threads":
        try:   # a signal stops the wait at once (``_xla.interruptible``)
            _xla.interruptible(worker.compile, should_stop)
        except KeyboardInterrupt:
            interrupted = True
        rd.sink.phase("train")   # other backends compile in their workers: the rows say when
    params: dict[int, Any] = {}
    extras: dict = {"staleness": {}, "lost": {}, "nonfinite": {}, "restarts": {},
                    "backend": config.backend,
                    "compile_s": time.perf_counter() - t_compile}
    failure: BaseException | None = None
    try:
        for seed in config.seeds if not interrupted else ():
            if should_stop() is not None:
                interrupted = True
                break
            got = run_seed(worker, seed, rd, loss_fn=loss_fn, should_stop=should_stop)
            if got.params is not None:
                params[seed] = got.params
            extras["staleness"][seed] = got.staleness
            extras["lost"][seed] = got.lost
            extras["nonfinite"][seed] = got.nonfinite
            extras.setdefault("eval_s", {})[seed] = got.eval_s
            if got.restarts:
                extras["restarts"][seed] = got.restarts
            if isinstance(got.stopped, Diverged):
                extras["diverged"] = str(got.stopped)
                break
            if isinstance(got.stopped, KeyboardInterrupt):
                interrupted = True
                break
            if got.stopped is not None:
                failure = got.stopped
                break
    except KeyboardInterrupt:
        interrupted = True
    result = RunResult(config=config, run_dir=None, rows=rd.sink.rows, params=params,
                       interrupted=interrupted, extras=extras,
                       kept_updates=rd.sink.update_rows if rd.sink.keep_updates else None)
    result.extras["failure"] = failure
    return result


def run_emulated(config: Config, loss_fn: Callable | None = None,
                 rd: directory.RunDir | None = None) -> RunResult:
    """Train every seed of a resolved config on the emulated backend
    (``a3c_jax.drivers.emulated.runs``): the same records, rows and updates.csv as the other
    asynchronous backends. Its one jitted program gives the rows at the end; they go to
    ``rd``'s subscribers then."""
    from a3c_jax.drivers.emulated.runs import run_seeds

    got = run_seeds(config, loss_fn)
    rows: list[dict] = []
    urows: list[dict] = []
    for seed, recs in got.records.items():
        rows += got.evals[seed].attach(records.rows_from_records(config, seed, recs))
        urows += records.update_rows(seed, recs)
    if rd is not None:
        rd.sink.add_rows(rows)
    return RunResult(config=config, run_dir=None, rows=rows, params=got.params,
                     interrupted=got.interrupted, kept_updates=urows, extras=got.extras)


def write_run(result: RunResult) -> None:
    """Write everything a run promises; safe to call on an interrupted run. The curves, grown
    row by row during the run, are rewritten whole (atomically) in their usual order."""
    run_dir = Path(result.config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    files.write_config(run_dir, result.config)
    files.write_csv(run_dir / "metrics.csv", curves.METRIC_COLUMNS, result.rows)
    order = {s: i for i, s in enumerate(result.config.seeds)}
    if result.kept_updates:
        urows = sorted(result.kept_updates, key=lambda r: (order.get(int(r["seed"]), 0),
                                                           int(r["version_written"])))
        files.write_csv(run_dir / "updates.csv", curves.UPDATE_COLUMNS, urows)
    elif result.kept_updates is None:   # appended as the records came: ordered in place
        files.sort_csv_lines(run_dir / "updates.csv", lambda f: (
            order.get(int(f["seed"]), 0), int(float(f["version_written"]))))
    for seed, p in result.params.items():
        if all(np.isfinite(x).all() for x in jax.tree.leaves(p)):   # never save a NaN
            files.save_params(run_dir, seed, p)
    if result.rows:
        figure.plot_run(result.rows, run_dir / "returns.png",
                          title=f"{result.config.algo} on {result.config.env}")
    result.run_dir = run_dir


def _finish_failing(rd: directory.RunDir, status: str, **outcome) -> None:
    """``rd.finish`` for a run already stopping with an error: that error is the one raised
    (a write that also fails here was said on stderr, or is in run.json)."""
    try:
        rd.finish(status, **outcome)
    except OSError:
        pass


def run(config: Config, loss_fn: Callable | None = None, write: bool = True,
        subscribers: Sequence = ()) -> RunResult:
    """Validate, resolve the per-method defaults (once), check the run directory's options
    (``InvalidInput`` before any work), train every seed, write the run directory (its
    config.json holds the resolved config; run.json the outcome). ``subscribers`` receive
    the rows as they are logged (module docstring). A worker's failure is raised after the
    run directory is written."""
    try:
        config = resolve(config)
        shown = loggers.subscribers(config)   # display, TensorBoard, W&B: checked here
        rd = directory.prepare(config, loss_fn, write, [*shown, *subscribers])
    except InvalidInput:
        raise
    except ValueError as err:
        raise InvalidInput(str(err)) from None
    # the emulated backend does not poll for a stop: the first signal raises there
    raise_first = config.backend == "emulated" and not config.is_sync
    with signals.RunSignals(on_second=rd.on_second, raise_first=raise_first) as sig:
        rd.start()
        rd.sink.phase("compile")
        stop = lambda: sig.received  # noqa: E731 - polled at the drivers' safe points
        try:
            if config.is_sync:
                result = run_sync(config, loss_fn, rd, stop)
            elif config.backend == "emulated":
                result = run_emulated(config, loss_fn, rd)
            else:
                result = run_async(config, loss_fn, rd, stop)
        except KeyboardInterrupt:   # a driver that let Ctrl-C through: nothing to write
            _finish_failing(rd, "interrupted", signum=sig.received or signal.SIGINT)
            raise
        except BaseException as exc:   # a worker's error, or a write that failed (full disk)
            _finish_failing(rd, "failed", error=exc)
            raise
        failure = result.extras.pop("failure", None)
        setup_s = rd.sink.setup_s()   # the span the display calls "compiled and initialised"
        if setup_s is not None:
            result.extras["compile_s"] = setup_s
        result.extras["signal"] = signals.signal_name(sig.received if result.interrupted
                                                      else None)
        try:
            if write:
                rd.sink.flush()   # every update row on disk: write_run orders them there
                write_run(result)
        except BaseException as exc:
            _finish_failing(rd, "failed", error=exc)
            raise
        diverged = result.extras.get("diverged")
        status = ("failed" if failure is not None else "interrupted" if result.interrupted
                  else "diverged" if diverged else "completed")
        rd.finish(status, error=failure,
                  signum=sig.received if result.interrupted else None,
                  diverged=diverged, nonfinite=result.extras.get("nonfinite"),
                  restarts=result.extras.get("restarts"))
    if failure is not None:
        raise failure
    return result
