"""Run an experiment from a Config: the impure shell around the pure drivers.

``run(config)`` trains every seed, shows progress, and writes the run directory (see
``a3c_jax.runlog``): config.json, metrics.csv, final parameters and a plot of return against env
steps. Ctrl-C stops training, and what was gathered so far is still written.

``wall_time_s`` counts from the end of compilation. With ``vmap_seeds`` the sync driver trains
all seeds in one call, so their wall-clock time is shared; wall-clock comparisons should use
``vmap_seeds=False`` (what the comparison script does).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax import runlog
from a3c_jax.config import Config, resolve_defaults


@dataclasses.dataclass
class RunResult:
    config: Config
    run_dir: Path | None
    rows: list[dict]                 # metrics.csv rows
    params: dict[int, Any]           # final parameters per seed
    interrupted: bool = False
    update_rows: list[dict] = dataclasses.field(default_factory=list)
    extras: dict = dataclasses.field(default_factory=dict)


def log_interval_updates(config: Config) -> int:
    """Updates per logged row (sync) — about 200 rows per run unless ``log_interval`` is set."""
    steps = config.log_interval or max(config.total_steps // 200, 1)
    return max(steps // config.steps_per_update, 1)


def _progress(config: Config, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=config.total_steps, desc=desc, unit="step", unit_scale=True,
                disable=not config.progress, leave=False)


def _row_from_chunk(config: Config, seed: int, metrics, i: int, wall: float) -> dict:
    ep = np.asarray(metrics.episodes[i], np.float64)
    ret = np.asarray(metrics.episode_return[i], np.float64)
    n = ep.sum()
    return {
        "algo": config.algo, "seed": seed, "env_steps": int(metrics.env_steps[i][-1]),
        "wall_time_s": wall,
        "episode_return": float(np.nansum(np.nan_to_num(ret) * ep) / n) if n else float("nan"),
        "episodes": int(n),
        "policy_loss": float(np.mean(metrics.policy_loss[i])),
        "value_loss": float(np.mean(metrics.value_loss[i])),
        "entropy": float(np.mean(metrics.entropy[i])),
        "total_loss": float(np.mean(metrics.total_loss[i])),
        "staleness": 0.0,
    }


def reached(rows: list[dict], seed: int, config: Config) -> bool:
    """Whether ``seed``'s smoothed return has reached ``config.stop_return``."""
    rs = [r for r in rows if r["seed"] == seed]
    if not rs:
        return False
    sm = runlog.smoothed_returns(np.array([r["env_steps"] for r in rs]),
                                 np.array([r["episode_return"] for r in rs]),
                                 np.array([r["episodes"] for r in rs]), config.stop_window)
    return bool(sm[-1] >= config.stop_return)


def run_a2c(config: Config, loss_fn: Callable | None = None, seeds=None,
            write: bool = True) -> RunResult:
    from a3c_jax.a2c import make_train

    config = resolve_defaults(config)
    trainer = make_train(config, loss_fn)
    seeds = tuple(config.seeds if seeds is None else seeds)
    groups = [seeds] if config.vmap_seeds else [(s,) for s in seeds]
    chunk = log_interval_updates(config)
    rows: list[dict] = []
    params: dict[int, Any] = {}
    interrupted = False
    bar = _progress(config, "a2c")
    init = jax.jit(jax.vmap(trainer.init))
    compiled: dict = {}
    try:
        for group in groups:
            keys = jax.vmap(jax.random.key)(jnp.asarray(group))
            state = trainer.shard(init(keys), batch_axis=1)

            def step_fn(n):
                if (n, len(group)) not in compiled:  # seeds of one size share executables
                    compiled[n, len(group)] = jax.jit(
                        jax.vmap(lambda s: trainer.run_chunk(s, n))).lower(state).compile()
                return compiled[n, len(group)]

            step_fn(chunk)
            done = 0
            t0 = time.perf_counter()
            try:
                while done < trainer.num_updates:
                    n = min(chunk, trainer.num_updates - done)
                    state, m = step_fn(n)(state)
                    m = jax.device_get(m)
                    wall = time.perf_counter() - t0
                    done += n
                    for i, seed in enumerate(group):
                        rows.append(_row_from_chunk(config, seed, m, i, wall))
                    bar.update(n * config.steps_per_update)
                    if config.stop_return and all(
                            reached(rows, seed, config) for seed in group):
                        break
            finally:
                final = jax.device_get(state.params)
                for i, seed in enumerate(group):
                    params[seed] = jax.tree.map(lambda x: x[i], final)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    return finish_run(config, rows, params, interrupted, write)


def finish_run(config: Config, rows: list[dict], params: dict, interrupted: bool,
               write: bool) -> RunResult:
    """The result of a synchronous run, written to ``config.out`` when ``write``."""
    result = RunResult(config=config, run_dir=Path(config.out) if write else None, rows=rows,
                       params=params, interrupted=interrupted)
    if write:
        write_run(result)
    return result


def write_run(result: RunResult) -> None:
    """Write everything a run promises; safe to call on an interrupted run."""
    run_dir = Path(result.config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    runlog.write_config(run_dir, resolve_defaults(result.config))
    runlog.write_csv(run_dir / "metrics.csv", runlog.METRIC_COLUMNS, result.rows)
    if result.update_rows:
        runlog.write_csv(run_dir / "updates.csv", runlog.UPDATE_COLUMNS, result.update_rows)
    for seed, p in result.params.items():
        runlog.save_params(run_dir, seed, p)
    if result.rows:
        from a3c_jax import plotting

        plotting.plot_run(result.rows, run_dir / "returns.png",
                          title=f"{result.config.algo} on {result.config.env}")


def run(config: Config, loss_fn: Callable | None = None, write: bool = True) -> RunResult:
    """Validate, resolve the per-action-space defaults, train every seed, write the run
    directory (its config.json holds the resolved config)."""
    config.validate()
    if config.algo == "a2c":
        return run_a2c(resolve_defaults(config), loss_fn, write=write)
    if config.algo == "a3c":
        from a3c_jax.a3c import run_a3c

        return run_a3c(resolve_defaults(config), loss_fn, write=write)
    # The value-based methods fill unset fields with their own defaults first
    # (qlearning.with_q_defaults); what is still unset is resolved when the run is written.
    from a3c_jax.qlearning import run_q

    return run_q(config, write=write)
