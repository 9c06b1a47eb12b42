"""Speedup with more workers (the paper's Table 2, on this machine): A3C with W workers for W in
a list, the wall-clock seconds and env steps to reach a score, and the speedup relative to the
smallest W; the A2C counterpart with W*E envs for reference.

    a3c-scaling --workers 1 2 4 8 --total-steps 500000 --out runs/scaling

(``python experiments/scaling.py`` in a checkout.)

Writes OUT/a3c_W{W}/ and OUT/a2c_N{W*E}/ (run directories), OUT/scaling.csv, OUT/scaling.md
and OUT/scaling.png. Speedup is in wall-clock seconds to the threshold (smoothed return), the
paper's measure; throughput speedup (env steps per second) is reported beside it because it
exists even when a run never reaches the threshold.

Threads cannot use more cores than the machine has: past os.cpu_count() workers the speedup
measures contention, not parallelism.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Literal

import tyro

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.shell import directory as rundir, files as runlog, signals
from a3c_jax.config.pairs import matched_pair
from a3c_jax.config.schema import Config, OptimizerName, StoreMode
from a3c_jax.commands import refused
from a3c_jax.shell.runner import run

TABLE_COLUMNS = ("method", "family", "workers", "envs_per_worker", "total_envs", "seeds",
                 "reached", "steps_to_threshold", "seconds_to_threshold", "speedup",
                 "speedup_lo", "speedup_hi", "env_steps_per_s", "throughput_speedup",
                 "throughput_speedup_lo", "throughput_speedup_hi", "steps_ratio", "staleness")

DEFAULTS = Config()


@dataclasses.dataclass(frozen=True)
class Args:
    """A3C speedup against the number of workers, with A2C at W*E envs for reference."""

    env: str = DEFAULTS.env
    """gymnax environment id."""
    workers: tuple[int, ...] = (1, 2, 4, 8)
    """Numbers of workers W to try."""
    envs_per_worker: int = DEFAULTS.envs_per_worker
    """A3C environments per worker E; A2C gets W*E environments."""
    seeds: tuple[int, ...] = DEFAULTS.seeds
    """Seeds per setting."""
    total_steps: int = 500_000
    """Env steps per run (the global counter T for A3C)."""
    threshold: float = 475.0
    """Score to reach (smoothed return)."""
    stop_at_threshold: bool = True
    """Stop each seed once it reaches the threshold (the speedup only needs the time to get
    there); its window is the one the tables smooth with."""
    window_frac: float = 0.02
    """Smoothing window as a fraction of total_steps (tables and the early stop alike)."""
    algos: tuple[Literal["a3c", "a2c"], ...] = ("a3c", "a2c")
    """Which algorithms to run."""
    backends: tuple[Literal["threads", "processes"], ...] = ("threads",)
    """A3C backends, each with its own speedups (threads share the GIL; processes do not)."""
    t_max: int = DEFAULTS.t_max
    """Segment length."""
    lr: float | None = DEFAULTS.lr
    """Learning rate."""
    optimizer: OptimizerName = DEFAULTS.optimizer
    """Optimiser."""
    store_mode: StoreMode = DEFAULTS.store_mode
    """A3C shared-store write mode."""
    out: str = "runs/scaling"
    """Output directory."""
    progress: bool = DEFAULTS.progress
    """Show progress bars."""
    overwrite: bool = False
    """Replace earlier runs under OUT (without it, an existing one is refused)."""


def run_dir(out: Path, algo: str, workers: int, envs_per_worker: int,
            backend: str = "threads") -> Path:
    if algo == "a2c":
        return out / f"a2c_N{workers * envs_per_worker}"
    return out / (f"a3c_W{workers}" if backend == "threads" else f"a3c_{backend}_W{workers}")


def family(config: dict) -> str:
    """The group a run's speedup is relative to: 'a2c', 'a3c threads', 'a3c processes'."""
    return "a2c" if config["algo"] == "a2c" else f"a3c {config['backend']}"


def readable(table):
    """The scaling table with each interval folded into its cell: '1.52 [1.31, 1.75]'."""
    t = table.drop(columns=[c for c in table.columns if c.endswith(("_lo", "_hi"))])
    for col in ("speedup", "throughput_speedup"):
        t[col] = [f"{tables.fmt_cell(v)} [{tables.fmt_cell(lo)}, {tables.fmt_cell(hi)}]"
                  for v, lo, hi in zip(table[col], table[f"{col}_lo"], table[f"{col}_hi"])]
    return t


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(args.out)
    cores = os.cpu_count()
    print(f"os.cpu_count() = {cores}: this machine has only {cores} cores, so speedups past "
          f"{cores} workers measure contention, not parallel work.")
    base = Config(env=args.env, total_steps=args.total_steps, seeds=tuple(args.seeds),
                  t_max=args.t_max, lr=args.lr, optimizer=args.optimizer,
                  store_mode=args.store_mode, progress=args.progress, overwrite=args.overwrite)
    if args.stop_at_threshold:
        base = base.replace(stop_return=args.threshold,
                            stop_window=max(int(args.window_frac * args.total_steps), 1))
    configs = []
    for w in args.workers:
        pair = matched_pair(base, w, args.envs_per_worker)
        for algo in args.algos:
            for b in (args.backends if algo == "a3c" else ("sync",)):
                c = pair[algo] if algo == "a2c" else pair[algo].replace(backend=b)
                configs.append(c.replace(out=str(run_dir(out, algo, w, args.envs_per_worker,
                                                         b))))
    def check() -> None:
        for c in configs:
            c.validate()
        for c in configs:   # every run directory checked before the first run trains
            rundir.check(c)

    status = refused(check)
    if status is not None:
        return status

    interrupted = None   # the exit status of an interrupted run
    done = []
    for c in configs:
        print(f"training {analysis.method_label(c.to_dict())} -> {c.out}")
        result = run(c)
        done.append(Path(c.out))
        if result.interrupted:
            interrupted = signals.exit_code_of(result.extras.get("signal"))
            break

    dirs = [d for d in done if (d / "metrics.csv").exists()]
    configs_of = {d: json.loads((d / "config.json").read_text()) for d in dirs}
    labels = [f"{family(configs_of[d])} {analysis.method_label(configs_of[d]).split(' ', 1)[1]}"
              for d in dirs]
    family_of = {lab: family(configs_of[d]) for lab, d in zip(labels, dirs)}
    df = analysis.load_runs(dirs, labels)
    if df.empty:
        print("error: no metrics", file=sys.stderr)
        return interrupted or 1
    summary = tables.summary_table(df, threshold=args.threshold, window_frac=args.window_frac)
    summary["family"] = summary["method"].map(family_of)
    table = tables.scaling_table(summary, x="total_envs", group="family")
    seeds = tables.per_seed(df, args.threshold, window_frac=args.window_frac)
    table = tables.speedup_intervals(seeds, table, group="family")[list(TABLE_COLUMNS)]
    runlog.atomic_write_text(out / "scaling.csv", table.to_csv(index=False))
    note = (f"\nSpeedup: mean wall-clock seconds to reach {args.threshold:g} (smoothed "
            "return) of the smallest setting of the same family over this setting's; "
            "throughput speedup: env steps per second over the smallest setting's; "
            f"[95% bootstrap intervals over seeds]. Measured on a machine with "
            f"os.cpu_count() = {cores}.\n")
    md = tables.to_markdown(readable(table))
    runlog.atomic_write_text(out / "scaling.md", md + note)
    fig = plotting.plot_scaling(table, out / "scaling.png", group="family",
                                title=f"{args.env}: scaling on {cores} cores "
                                      f"({analysis.seeds_label(len(args.seeds))})")
    print()
    print(md + note)
    print(f"table: {out / 'scaling.csv'} and {out / 'scaling.md'}\nfigure: {fig}")
    return interrupted or 0


if __name__ == "__main__":
    sys.exit(main())
