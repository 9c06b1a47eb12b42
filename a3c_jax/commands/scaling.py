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


from a3c_jax.analysis import runs as analysis, figures as plotting, labels as naming, tables
from a3c_jax.shell import directory as rundir, files as runlog, signals
from a3c_jax.config.pairs import matched_pair
from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import (GROUPS, Algorithm, Config, Environment, Network,
                                   Optimisation, Output, Parallelism, StoreMode)
from a3c_jax.commands import cli, refused
from a3c_jax.core import curves
from a3c_jax.shell.runner import run

TABLE_COLUMNS = ("method", "family", "workers", "envs_per_worker", "total_envs", "seeds",
                 "reached", "steps_to_threshold", "seconds_to_threshold", "speedup",
                 "speedup_lo", "speedup_hi", "env_steps_per_s", "throughput_speedup",
                 "throughput_speedup_lo", "throughput_speedup_hi", "steps_ratio", "staleness")

PARALLELISM = Parallelism()


@dataclasses.dataclass(frozen=True)
class Args:
    """A3C speedup against the number of workers, with A2C at W*E envs for reference."""

    environment: Environment = Environment()
    algorithm: Algorithm = Algorithm(algo="a3c")
    optimisation: Optimisation = Optimisation()
    network: Network = Network()
    output: Output = Output(out="runs/scaling")
    workers: tuple[int, ...] = (1, 2, 4, 8)
    """Numbers of workers W to try (the parallelism group's other options follow)."""
    envs_per_worker: int = PARALLELISM.envs_per_worker
    """A3C environments per worker E; A2C gets W*E environments."""
    store_mode: StoreMode = PARALLELISM.store_mode
    """A3C shared-store write mode."""
    backends: tuple[Literal["threads", "processes"], ...] = ("threads",)
    """A3C backends, each with its own speedups (threads share the GIL; processes do not)."""
    threshold: float = 475.0
    """Score to reach (smoothed return)."""
    stop_at_threshold: bool = True
    """Stop each seed once it reaches the threshold (the speedup only needs the time to get
    there); its window is the one the tables smooth with."""
    window: int = curves.SMOOTH_WINDOW
    """Env steps the return is smoothed over (tables and the early stop alike; a number of env
    steps, not a fraction of --total-steps, so the time to the threshold does not depend on
    the budget)."""
    algos: tuple[Literal["a3c", "a2c"], ...] = ("a3c", "a2c")
    """Which algorithms to run."""

    def base(self) -> Config:
        """The config every run is built from (its workers set per run)."""
        groups = {name: getattr(self, name) for name in GROUPS if name != "parallelism"}
        return Config(**groups, envs_per_worker=self.envs_per_worker,
                      store_mode=self.store_mode)


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
    args = cli.parse(Args, argv, description=__doc__)
    base = args.base()
    if base.family != "actor_critic":
        print(f"error: --algo: the scaling table compares a3c with a2c, got {base.algo}",
              file=sys.stderr)
        return 2
    out = Path(base.out)
    cores = os.cpu_count()
    print(f"os.cpu_count() = {cores}: this machine has only {cores} cores, so speedups past "
          f"{cores} workers measure contention, not parallel work.")
    if args.stop_at_threshold:
        base = base.replace(stop_return=args.threshold, stop_window=args.window)
    configs = []
    for w in args.workers:
        pair = matched_pair(base, w, args.envs_per_worker)
        for algo in args.algos:
            for b in (args.backends if algo == "a3c" else ("sync",)):
                c = pair[algo] if algo == "a2c" else pair[algo].replace(backend=b)
                configs.append(c.replace(out=str(run_dir(out, algo, w, args.envs_per_worker,
                                                         b))))
    def check() -> None:
        configs[:] = [resolve(c) for c in configs]   # validated here, once
        for c in configs:   # every run directory checked before the first run trains
            rundir.check(c)

    status = refused(check)
    if status is not None:
        return status

    interrupted = None   # the exit status of an interrupted run
    done = []
    for c in configs:
        print(f"training {naming.method_label(c.to_dict())} -> {c.out}")
        result = run(c)
        done.append(Path(c.out))
        if result.interrupted:
            interrupted = signals.exit_code_of(result.extras.get("signal"))
            break

    dirs = [d for d in done if (d / "metrics.csv").exists()]
    configs_of = {d: json.loads((d / "config.json").read_text()) for d in dirs}
    labels = [f"{family(configs_of[d])} {naming.method_label(configs_of[d]).split(' ', 1)[1]}"
              for d in dirs]
    family_of = {lab: family(configs_of[d]) for lab, d in zip(labels, dirs)}
    df = analysis.load_runs(dirs, labels)
    if df.empty:
        print("error: no metrics", file=sys.stderr)
        return interrupted or 1
    summary = tables.summary_table(df, threshold=args.threshold, window_steps=args.window)
    summary["family"] = summary["method"].map(family_of)
    table = tables.scaling_table(summary, x="total_envs", group="family")
    seeds = tables.per_seed(df, args.threshold, window_steps=args.window)
    table = tables.speedup_intervals(seeds, table, group="family")[list(TABLE_COLUMNS)]
    runlog.atomic_write_text(out / "scaling.csv", table.to_csv(index=False))
    note = (f"\nSpeedup: mean wall-clock seconds to reach {args.threshold:g} (the return "
            f"{curves.window_text(args.window)}) of the smallest setting of the same family "
            "over this setting's; "
            "throughput speedup: env steps per second over the smallest setting's; "
            f"[95% bootstrap intervals over seeds]. Measured on a machine with "
            f"os.cpu_count() = {cores}.\n")
    md = tables.to_markdown(readable(table))
    runlog.atomic_write_text(out / "scaling.md", md + note)
    fig = plotting.plot_scaling(table, out / "scaling.png", group="family",
                                title=f"{base.env}: scaling on {cores} cores "
                                      f"({analysis.seeds_label(len(base.seeds))})")
    print()
    print(md + note)
    print(f"table: {out / 'scaling.csv'} and {out / 'scaling.md'}\nfigure: {fig}")
    return interrupted or 0


if __name__ == "__main__":
    sys.exit(main())
