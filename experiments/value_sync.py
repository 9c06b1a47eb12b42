"""A value method on the synchronous driver at several numbers of environments: the return of
the behaviour policy (epsilon-greedy, what every run's metrics.csv holds) against the return
of the greedy policy, played apart every ``--eval-every`` env steps.

    python experiments/value_sync.py --algo nq --num-envs 2 16 --out runs/nq_sync

With the paper's final epsilons (drawn per actor from {0.1, 0.01, 0.5}), an actor that
explores with epsilon 0.5 ends its episodes early whatever Q has learned, and its many short
episodes weigh on the episode-weighted mean of the behaviour return: the greedy return says
whether Q has been learned. Writes one run directory per N (OUT/N{n}), OUT/curves.csv (one row per seed and evaluation: behaviour
return of the episodes since the last one, greedy mean return), OUT/value_sync.png (two
panels, mean and bootstrapped 95% band over seeds) and prints the env steps to the threshold
of each measure.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import pandas as pd
import tyro

from a3c_jax.analysis import figures as plotting
from a3c_jax.config.schema import Config
from a3c_jax.core import curves
from a3c_jax.shell.runner import run


@dataclasses.dataclass(frozen=True)
class Args:
    """Behaviour against greedy return of a value method on the sync driver."""

    algo: Literal["q1", "sarsa", "nq"] = "nq"
    """The value method."""
    env: str = "CartPole-v1"
    """gymnax environment id (discrete actions)."""
    num_envs: tuple[int, ...] = (2, 16)
    """Numbers of lockstep environments N, one run each."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds, trained together (vmapped)."""
    total_steps: int = 1_000_000
    """Env steps per run."""
    eval_every: int = 20_000
    """Env steps between greedy evaluations."""
    eval_episodes: int = 16
    """Greedy episodes per evaluation and seed."""
    threshold: float = 400.0
    """Score for 'env steps to threshold' (behaviour: smoothed over 10k steps; greedy: mean)."""
    out: str = "runs/value_sync"
    """Output directory."""


def train_curves(a: Args, n: int, out: Path) -> pd.DataFrame:
    """Train with ``eval_every`` (the greedy evaluations of every run) and read the rows
    back: one per seed and evaluation, the behaviour return of the episodes since the last
    one beside the evaluation's greedy mean return."""
    config = Config(algo=a.algo, backend="sync", env=a.env, num_envs=n,
                    total_steps=a.total_steps, seeds=tuple(a.seeds), log_interval=a.eval_every,
                    log_seconds=0.0, eval_every=a.eval_every, eval_episodes=a.eval_episodes,
                    out=str(out / f"N{n}"), overwrite=True)
    result = run(config)
    df = pd.DataFrame(result.rows)
    df = df[df["eval_return"].notna()] if "eval_return" in df else df.iloc[:0]
    return pd.DataFrame({"num_envs": n, "seed": df["seed"].astype(int),
                         "env_steps": df["env_steps"].astype(int),
                         "behaviour_return": df["episode_return"].astype(float),
                         "episodes": df["episodes"].astype(float),
                         "greedy_return": df["eval_return"].astype(float)})


def steps_to(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    out = []
    for (n, seed), g in df.groupby(["num_envs", "seed"]):
        steps = g["env_steps"].to_numpy()
        sm = curves.smoothed_returns(steps, g["behaviour_return"].to_numpy(),
                                     g["episodes"].to_numpy(), 10_000)
        out.append({"num_envs": n, "seed": seed,
                    "behaviour": curves.steps_to_threshold(steps, sm, threshold),
                    "greedy": curves.steps_to_threshold(steps, g["greedy_return"].to_numpy(),
                                                        threshold),
                    "final_behaviour": sm[-1], "final_greedy": g["greedy_return"].iloc[-1]})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    a = tyro.cli(Args, args=argv, description=__doc__)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df = pd.concat([train_curves(a, n, out) for n in a.num_envs], ignore_index=True)
    df.to_csv(out / "curves.csv", index=False)
    long = pd.concat([
        df.assign(measure="behaviour (epsilon-greedy)", episode_return=df["behaviour_return"]),
        df.assign(measure="greedy", episode_return=df["greedy_return"], episodes=1.0)],
        ignore_index=True)
    long["method"] = [f"{a.algo}_sync N={n}" for n in long["num_envs"]]
    long["run_dir"] = long["measure"] + "/" + long["method"]      # one curve per seed each
    long["total_steps"] = a.total_steps
    fig = plotting.plot_panels_by_steps(long, out / "value_sync.png", panel="measure",
                                        threshold=a.threshold,
                                        title=f"{a.algo} on the sync driver, {a.env}")
    table = steps_to(df, a.threshold)
    print(table.to_string(index=False))
    print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
