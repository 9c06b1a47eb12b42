"""Run an experiment from a Config: the impure shell around the drivers.

``run(config)`` validates the config, resolves its per-method defaults **once**
(``defaults.resolve``), trains every seed on the synchronous driver (``a3c_jax.sync``) or on
asynchronous workers (``a3c_jax.supervisor`` over ``config.backend``), shows progress, and
writes the run directory (see ``a3c_jax.runlog``): config.json (resolved), metrics.csv,
updates.csv for asynchronous runs, final parameters and a plot of return against env steps.
Ctrl-C stops training, and what was gathered so far is still written; a failing worker's
error is re-raised after the run directory is written.

``wall_time_s`` counts from the end of compilation: the sync driver compiles every chunk
length it will use before its clock starts (``compile_s`` in ``RunResult.extras``). With
``vmap_seeds`` the sync driver trains all seeds in one call, so their wall-clock time is
shared; wall-clock comparisons use ``vmap_seeds=False`` (what ``budget.matched_pair`` sets).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp

from a3c_jax import records as records_lib
from a3c_jax import runlog
from a3c_jax.config import Config
from a3c_jax.defaults import resolve


@dataclasses.dataclass
class RunResult:
    config: Config                   # resolved
    run_dir: Path | None
    rows: list[dict]                 # metrics.csv rows
    params: dict[int, Any]           # final parameters per seed
    interrupted: bool = False
    update_rows: list[dict] = dataclasses.field(default_factory=list)
    extras: dict = dataclasses.field(default_factory=dict)


def _progress(config: Config, total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True,
                disable=not config.progress, leave=False)


def run_sync(config: Config, loss_fn: Callable | None = None) -> RunResult:
    """Train every seed of a resolved config on the synchronous driver."""
    from a3c_jax.sync import SyncTrainer

    trainer = SyncTrainer(config, loss_fn)
    groups = [tuple(config.seeds)] if config.vmap_seeds else [(s,) for s in config.seeds]
    chunk = max(records_lib.log_interval(config) // trainer.steps_per_update, 1)
    sizes = {min(chunk, trainer.num_updates)}
    if trainer.num_updates % chunk:
        sizes.add(trainer.num_updates % chunk)   # the last, shorter chunk
    rows: list[dict] = []
    params: dict[int, Any] = {}
    interrupted = False
    compile_s = 0.0
    bar = _progress(config, config.total_steps * len(config.seeds), records_lib.row_label(config))
    init = jax.jit(jax.vmap(trainer.init))
    compiled: dict = {}
    try:
        for group in groups:
            keys = jax.vmap(jax.random.key)(jnp.asarray(group))
            state = trainer.shard(init(keys), batch_axis=1)
            t_compile = time.perf_counter()
            for n in sizes:   # every chunk length compiled before the clock starts
                if (n, len(group)) not in compiled:
                    compiled[n, len(group)] = jax.jit(jax.vmap(
                        lambda s, n=n: trainer.run_chunk(s, n))).lower(state).compile()
            compile_s += time.perf_counter() - t_compile
            done = 0
            t0 = time.perf_counter()
            try:
                while done < trainer.num_updates:
                    n = min(chunk, trainer.num_updates - done)
                    state, m = compiled[n, len(group)](state)
                    m = jax.device_get(m)
                    wall = time.perf_counter() - t0
                    done += n
                    for i, seed in enumerate(group):
                        rows.append(records_lib.row_from_chunk(config, seed, m, i, wall))
                    bar.update(n * trainer.steps_per_update * len(group))
                    if config.stop_return and all(
                            records_lib.reached(rows, seed, config) for seed in group):
                        break
            finally:
                final = jax.device_get(state.params)
                for i, seed in enumerate(group):
                    params[seed] = jax.tree.map(lambda x: x[i], final)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return RunResult(config=config, run_dir=None, rows=rows, params=params,
                     interrupted=interrupted, extras={"compile_s": compile_s})


def run_async(config: Config, loss_fn: Callable | None = None) -> RunResult:
    """Train every seed of a resolved config with asynchronous workers on ``config.backend``;
    returns the result and the failure (a worker's error) if one stopped the run."""
    from a3c_jax.supervisor import train_seed
    from a3c_jax.worker import AsyncWorker

    worker = AsyncWorker(config, loss_fn)
    t_compile = time.perf_counter()
    if config.backend == "threads":
        worker.compile()
    rows: list[dict] = []
    urows: list[dict] = []
    params: dict[int, Any] = {}
    extras: dict = {"staleness": {}, "lost": {}, "backend": config.backend,
                    "compile_s": time.perf_counter() - t_compile}
    interrupted = False
    failure: BaseException | None = None
    bar = _progress(config, config.total_steps, config.algo)
    try:
        for seed in config.seeds:
            bar.reset()
            got = train_seed(worker, seed, bar.update, loss_fn=loss_fn)
            rows += records_lib.rows_from_records(config, seed, got.records)
            urows += records_lib.update_rows(seed, got.records)
            if got.flat_params is not None:
                params[seed] = worker.unravel(got.flat_params)
            extras["staleness"][seed] = records_lib.staleness_summary(got.records)
            extras["lost"][seed] = got.lost
            if isinstance(got.stopped, KeyboardInterrupt):
                interrupted = True
                break
            if got.stopped is not None:
                failure = got.stopped
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    result = RunResult(config=config, run_dir=None, rows=rows, params=params,
                       interrupted=interrupted, update_rows=urows, extras=extras)
    result.extras["failure"] = failure
    return result


def write_run(result: RunResult) -> None:
    """Write everything a run promises; safe to call on an interrupted run."""
    run_dir = Path(result.config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    runlog.write_config(run_dir, result.config)
    runlog.write_csv(run_dir / "metrics.csv", runlog.METRIC_COLUMNS, result.rows)
    if result.update_rows:
        runlog.write_csv(run_dir / "updates.csv", runlog.UPDATE_COLUMNS, result.update_rows)
    for seed, p in result.params.items():
        runlog.save_params(run_dir, seed, p)
    if result.rows:
        from a3c_jax import plotting

        plotting.plot_run(result.rows, run_dir / "returns.png",
                          title=f"{result.config.algo} on {result.config.env}")
    result.run_dir = run_dir


def run(config: Config, loss_fn: Callable | None = None, write: bool = True) -> RunResult:
    """Validate, resolve the per-method defaults (once), train every seed, write the run
    directory (its config.json holds the resolved config). A worker's failure is raised
    after the run directory is written."""
    config = resolve(config.validate())
    result = run_sync(config, loss_fn) if config.is_sync else run_async(config, loss_fn)
    failure = result.extras.pop("failure", None)
    if write:
        write_run(result)
    if failure is not None:
        raise failure
    return result
