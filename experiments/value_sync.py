"""A value method on the synchronous driver at several numbers of environments: the return of
the behaviour policy (epsilon-greedy, what every run's metrics.csv holds) against the return
of the greedy policy, played apart every ``--eval-every`` env steps.

    python experiments/value_sync.py --algo nq --num-envs 2 16 --out runs/nq_sync

With the paper's final epsilons (drawn per actor from {0.1, 0.01, 0.5}), an actor that
explores with epsilon 0.5 ends its episodes early whatever Q has learned, and its many short
episodes weigh on the episode-weighted mean of the behaviour return: the greedy return says
whether Q has been learned. Writes OUT/curves.csv (one row per seed and evaluation: behaviour
return of the episodes since the last one, greedy mean return), OUT/value_sync.png (two
panels, mean and bootstrapped 95% band over seeds) and prints the env steps to the threshold
of each measure.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import tyro

from a3c_jax.analysis import figures as plotting, policy
from a3c_jax.core import curves
from a3c_jax.config.schema import Config
from a3c_jax.drivers.synchronous import make_train


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


def train_curves(a: Args, n: int) -> pd.DataFrame:
    trainer = make_train(Config(algo=a.algo, backend="sync", env=a.env, num_envs=n,
                                total_steps=a.total_steps, seeds=tuple(a.seeds)))
    chunk = max(a.eval_every // trainer.steps_per_update, 1)
    state = jax.jit(jax.vmap(trainer.init))(jax.vmap(jax.random.key)(jnp.asarray(a.seeds)))
    run = jax.jit(jax.vmap(lambda s: trainer.run_chunk(s, chunk)))
    rows, done = [], 0
    while done + chunk <= trainer.num_updates:
        state, m = jax.device_get(run(state))
        done += chunk
        params = jax.device_get(state.params)
        for i, seed in enumerate(a.seeds):
            ep = np.asarray(m.episodes[i], np.float64)
            ret = np.nan_to_num(np.asarray(m.episode_return[i], np.float64)) * ep
            p = policy.make_policy(trainer.config, jax.tree.map(lambda x: x[i], params))
            greedy = policy.evaluate(p, a.eval_episodes, policy.eval_key(1, seed))
            rows.append({"num_envs": n, "seed": seed, "env_steps": int(m.env_steps[i][-1]),
                         "behaviour_return": ret.sum() / ep.sum() if ep.sum() else np.nan,
                         "episodes": ep.sum(), "greedy_return": greedy["returns"].mean()})
        print(f"N={n}: {int(m.env_steps[0][-1])} env steps, greedy "
              f"{np.mean([r['greedy_return'] for r in rows[-len(a.seeds):]]):.1f}",
              flush=True)
    return pd.DataFrame(rows)


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
    df = pd.concat([train_curves(a, n) for n in a.num_envs], ignore_index=True)
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
