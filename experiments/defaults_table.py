"""Out-of-the-box results: one method with its defaults on several tasks, one table.

    python experiments/defaults_table.py --out runs/defaults
    python experiments/defaults_table.py --set reward_norm=false combine=sum lr=3e-3 \
        --envs CartPole-v1 Acrobot-v1 --out runs/defaults_before

Every run is ``Config(algo=ALGO, env=ENV, seeds=SEEDS)`` and nothing else (the budget and
the number of environments are the defaults unless given), plus the ``--set`` overrides, which
apply to every task. Each task's threshold is its entry in ``THRESHOLDS`` (CartPole's 475 in
the task's reward units). Writes OUT/<env>/ (run directories), OUT/defaults.csv and
OUT/defaults.md (per task: seeds reaching the threshold, env steps to it, final return, the
resolved values of the per-method defaults), and prints the table.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd
import tyro

from a3c_jax.analysis import runs as analysis, tables
from a3c_jax.shell import files as runlog
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run

THRESHOLDS = {"CartPole-v1": 475.0, "CartPole-x100-v1": 47_500.0, "CartPole-x0.01-v1": 4.75,
              "Acrobot-v1": -100.0, "Pendulum-v1": -400.0, "Breakout-MinAtar": 17.5,
              "Asterix-MinAtar": 19.0}
SHOWN = ("lr", "combine", "reward_norm", "reward_scale", "gamma", "obs_norm", "shared_torso")


@dataclasses.dataclass(frozen=True)
class Args:
    """One method's defaults on several tasks."""

    algo: str = "a2c"
    """The method (a2c, a3c, q1, sarsa, nq)."""
    envs: tuple[str, ...] = ("CartPole-v1", "CartPole-x100-v1", "CartPole-x0.01-v1",
                             "Acrobot-v1", "Pendulum-v1")
    """Tasks (each needs an entry in THRESHOLDS)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds per task."""
    total_steps: int = Config().total_steps
    """Env steps per seed."""
    log_interval: int = 2_500
    """Env steps per logged row: fixed, so that "env steps to it" has one resolution at every
    budget (the run's own default, about 200 rows, is 25k steps at 5M)."""
    set: tuple[str, ...] = ()
    """Overrides for every task, as field=value (value in JSON: 3e-3, false, "sum")."""
    out: str = "runs/defaults"
    """Output directory."""
    progress: bool = True
    """Show progress bars."""


def overrides(items: tuple[str, ...]) -> dict:
    got = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"set: expected field=value, got {item!r}")
        try:
            got[name] = json.loads(value)
        except json.JSONDecodeError:
            got[name] = value
    return got


def main(argv: list[str] | None = None) -> int:
    a = tyro.cli(Args, args=argv, description=__doc__)
    try:
        extra = overrides(a.set)
        unknown = [e for e in a.envs if e not in THRESHOLDS]
        if unknown:
            raise ValueError(f"envs: no threshold for {', '.join(unknown)}")
        configs = {env: Config(algo=a.algo, env=env, seeds=tuple(a.seeds),
                               total_steps=a.total_steps, progress=a.progress,
                               out=str(Path(a.out) / env),
                               **{"log_interval": a.log_interval, **extra}).validate()
                   for env in a.envs}
    except (TypeError, ValueError) as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2
    rows = []
    for env, c in configs.items():
        print(f"training {a.algo} on {env} -> {c.out}", flush=True)
        result = run(c)
        df = analysis.load_runs([c.out])
        t = tables.summary_table(df, threshold=THRESHOLDS[env]).iloc[0]
        resolved = runlog.read_config(c.out)
        rows.append({"env": env, "threshold": THRESHOLDS[env], "seeds": int(t["seeds"]),
                     "reached": int(t["reached"]), "steps_to_threshold": t["steps_to_threshold"],
                     "final_return": t["final_return"],
                     **{k: getattr(resolved, k) for k in SHOWN}})
        if result.interrupted:
            break
    table = pd.DataFrame(rows)
    out = Path(a.out)
    runlog.atomic_write_text(out / "defaults.csv", table.to_csv(index=False))
    md = tables.to_markdown(table)
    runlog.atomic_write_text(out / "defaults.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
