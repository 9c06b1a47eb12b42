"""Fixed segments against the paper's (until-terminal), and the three ways to combine an
update's segments (sum, step-mean, env-mean), on the synchronous driver over N environments.

    python experiments/segments.py --out runs/segments
    python experiments/segments.py --algo nq --threshold 400 --total-steps 1000000

Trains one run per (segments, combine) pair, every seed of a pair in one vmapped call, into
OUT/<segments>_<combine>/, then writes OUT/segments.png (return against env steps, one panel
per segment kind, mean and bootstrapped 95% band over seeds), OUT/summary.csv and
OUT/summary.md (final return, seeds reaching the threshold, env steps to it). Everything but
the two options comes from the defaults of the method (``--lr`` and ``--num-envs`` apart).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import tyro

from a3c_jax.analysis import runs as analysis, figures as plotting, tables
from a3c_jax.core.combine import COMBINES
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run

SEGMENTS = ("fixed", "until-terminal")


@dataclasses.dataclass(frozen=True)
class Args:
    """Segment kinds against ways to combine gradients, on the sync driver."""

    algo: Literal["a2c", "q1", "sarsa", "nq"] = "a2c"
    """The method (its synchronous form: a2c, or q1 / sarsa / nq with backend sync)."""
    env: str = "CartPole-v1"
    """gymnax environment id."""
    num_envs: int = 16
    """N lockstep environments."""
    total_steps: int = 300_000
    """Budget per run (the sync driver makes total_steps // (t_max N) updates)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, trained together (vmapped) for each pair."""
    lr: float | None = None
    """Learning rate; None: the method's default."""
    threshold: float = 475.0
    """Score for 'env steps to threshold' (smoothed return)."""
    out: str = "runs/segments"
    """Output directory."""
    progress: bool = True
    """Show progress bars."""


def configs(a: Args) -> dict[tuple[str, str], Config]:
    base = Config(algo=a.algo, backend="sync", env=a.env, num_envs=a.num_envs,
                  total_steps=a.total_steps, seeds=tuple(a.seeds), lr=a.lr,
                  progress=a.progress)
    return {(s, c): base.replace(segments=s, combine=c, out=str(Path(a.out) / f"{s}_{c}"))
            for s in SEGMENTS for c in COMBINES}


def main(argv: list[str] | None = None) -> int:
    a = tyro.cli(Args, args=argv, description=__doc__)
    runs = configs(a)
    try:
        for c in runs.values():
            c.validate()
    except ValueError as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2
    for (seg, how), c in runs.items():
        print(f"training {a.algo}, segments {seg}, combine {how} -> {c.out}", flush=True)
        if run(c).interrupted:
            print("interrupted", file=sys.stderr)
            return 130
    dirs = [c.out for c in runs.values()]
    df = analysis.load_runs(dirs, labels=[f"{seg} / {how}" for seg, how in runs])
    seg_of = {c.out: seg for (seg, _), c in runs.items()}
    how_of = {c.out: how for (_, how), c in runs.items()}
    df["segments"] = df["run_dir"].map(seg_of)
    out = Path(a.out)
    # one panel per segments, a line per combine: the same colour for a combine in each panel
    fig = plotting.plot_panels_by_steps(
        df.assign(method=df["run_dir"].map(how_of)), out / "segments.png", panel="segments",
        threshold=a.threshold,
        title=f"{a.algo} on {a.env}, N = {a.num_envs}: segments and how an update combines "
              "them")
    table = tables.summary_table(df, threshold=a.threshold)
    tables.write_summary(table, out)
    print(tables.summary_markdown(table))
    print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
