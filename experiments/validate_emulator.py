"""Does the emulator reproduce real asynchrony? Real A3C threads against the emulated backend
replaying their own staleness traces, compared by env steps to a threshold over seeds.

1. W real threads (E = 1), every seed stopping at the threshold: ``OUT/threads`` (its
   updates.csv holds every update's staleness);
2. the emulated backend with ``--staleness trace:OUT/threads``: each seed replays the trace
   of the same seed (same initial parameters, worker keys and environments);
3. references on the emulator: no staleness (``fixed:0``) and lockstep (``round-robin``).

Prints medians, the Mann-Whitney U and Kolmogorov-Smirnov two-sample tests of each emulated
setting against the threads, writes OUT/validation.{csv,md,png}.

    python experiments/validate_emulator.py --seeds 0 1 2 3 4 5 6 7 8 9 10 11 --out runs/validate

A completed OUT/threads of the same config is reused (``--rerun-threads`` to redo it), and
so is a completed emulated run of the same config (the emulator is deterministic; a replay
only if it is newer than the trace). The
emulated runs take the threads run's resolved config (config.json), changing only the
backend and the staleness model.
Needs scipy (the ``stats`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import tyro

from a3c_jax.core import curves
from a3c_jax.shell import files as runlog
from a3c_jax.core import staleness
from a3c_jax.analysis import staleness as staleness_report
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.shell.runner import run


@dataclasses.dataclass(frozen=True)
class Args:
    """Real threads against the emulator replaying their staleness traces."""

    env: str = "CartPole-v1"
    """gymnax environment id."""
    workers: int = 2
    """Threads W (and emulated workers)."""
    seeds: tuple[int, ...] = tuple(range(12))
    """Seeds (the same for every setting)."""
    total_steps: int = 1_000_000
    """Budget per seed; every run stops at the threshold."""
    threshold: float = 475.0
    """Score to reach (smoothed return over ``window`` env steps)."""
    window: int = 10_000
    """Smoothing window in env steps (also the early stop's)."""
    references: tuple[str, ...] = ("fixed:0", "round-robin")
    """Other emulated staleness models to run beside the replay."""
    rerun_threads: bool = False
    """Run the threads again even if OUT/threads holds every seed."""
    out: str = "runs/validate"
    """Output directory."""
    figure: str = ""
    """Also save the figure here (e.g. docs/figures/emulator_validation.png)."""


def finished(run_dir: Path, config: Config) -> bool:
    """Whether ``run_dir`` holds a completed run of ``config`` (the same resolved config)."""
    try:
        done = json.loads((run_dir / "run.json").read_text())["status"] == "completed"
        held = runlog.read_config(run_dir)
    except (OSError, ValueError, KeyError):
        return False
    plain = dict(out="", overwrite=False)
    return done and held.replace(**plain) == resolve(config).replace(**plain)


def steps_per_seed(run_dir: Path, seeds, threshold: float, window: int) -> np.ndarray:
    rows = runlog.read_csv(run_dir / "updates.csv")
    return np.array([curves.updates_steps_to(rows, threshold, window, seed=s) for s in seeds])


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(args.out)
    base = Config(algo="a3c", env=args.env, workers=args.workers, envs_per_worker=1,
                  total_steps=args.total_steps, seeds=tuple(args.seeds),
                  stop_return=args.threshold, stop_window=args.window, progress=False)
    threads = base.replace(backend="threads", out=str(out / "threads"))
    try:
        threads.validate()
        for ref in args.references:
            base.replace(backend="emulated", staleness=ref).validate()
    except ValueError as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2
    if args.rerun_threads or not finished(out / "threads", threads):
        print(f"training {args.workers} threads -> {threads.out}")
        run(threads.replace(overwrite=True))
    else:
        print(f"threads: reusing {threads.out}")
    real = runlog.read_config(out / "threads")   # resolved: the emulator gets the same values
    settings = {"threads": out / "threads"}
    for model in (f"trace:{out / 'threads'}", *args.references):
        label = "trace" if model.startswith("trace:") else model
        d = out / ("emulated_" + re.sub(r"[^A-Za-z0-9]+", "_", label))
        config = real.replace(backend="emulated", staleness=model, out=str(d), overwrite=False)
        newer = not model.startswith("trace:") or (d / "updates.csv").exists() and (
            (d / "updates.csv").stat().st_mtime > (out / "threads" / "updates.csv").stat().st_mtime)
        if finished(d, config) and newer:   # the emulator is deterministic: a run stands
            print(f"emulated {label}: reusing {d}")
        else:
            print(f"training emulated {label} -> {d}")
            run(config.replace(overwrite=True))
        settings[f"emulated {label}"] = d
    samples = {k: steps_per_seed(d, args.seeds, args.threshold, args.window)
               for k, d in settings.items()}
    trace = np.concatenate([staleness.read_trace(out / "threads", s) for s in args.seeds])
    extra = {k: {"mean_staleness": float(np.mean([float(r["staleness"]) for r in
                                                  runlog.read_csv(settings[k] / "updates.csv")]))}
             for k in samples}
    tests = {}
    for k in samples:
        if k != "threads":
            t = staleness_report.compare(samples["threads"], samples[k])
            tests[k] = t
            extra[k].update(mannwhitney_p=t["mannwhitney_p"], ks_p=t["ks_p"])
    table = staleness_report.steps_table(samples, extra)
    runlog.atomic_write_text(out / "validation.csv", table.to_csv(index=False))
    md = staleness_report.table_markdown(table)
    runlog.atomic_write_text(out / "validation.md", md)
    runlog.atomic_write_text(out / "validation.json", json.dumps(
        {"per_seed": {k: [None if not np.isfinite(v) else float(v) for v in s]
                      for k, s in samples.items()}, "tests": tests}, indent=2) + "\n")
    title = (f"A3C on {args.env}, {args.workers} threads vs the emulator, "
             f"{len(args.seeds)} seeds")
    fig = staleness_report.plot_validation(samples, trace, args.threshold,
                                           out / "validation.png", title)
    if args.figure:
        staleness_report.plot_validation(samples, trace, args.threshold, args.figure, title)
    print()
    print(md)
    for k, t in tests.items():
        print(f"{k} vs threads: medians {t['median_b']:,.0f} vs {t['median_a']:,.0f}; "
              f"Mann-Whitney U = {t['mannwhitney_u']:.1f}, p = {t['mannwhitney_p']:.3f}; "
              f"KS D = {t['ks_d']:.2f}, p = {t['ks_p']:.3f}")
    print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
