"""Does a longer budget learn like a shorter one? Env steps to a smoothed return, per budget.

    python experiments/budget_horizon.py --budgets 300000 1000000 --seeds 0 1 2
    python experiments/budget_horizon.py --set lr_anneal_steps=0    # the budget's schedule

Each run is ``Config(algo, env, workers, seed, total_steps=B)`` with the defaults and the
``--set`` overrides, one at a time, no early stop. The statistic is the asynchronous early
stop's (``curves.updates_steps_to``: the episode-weighted mean return over the last
``stop_window`` env steps of the per-update records), so it is read where it first reaches
``threshold``. Prints one row per (budget, seed) and, per budget, the median.
"""

from __future__ import annotations

import dataclasses
import statistics

import tyro

from a3c_jax.config.schema import Config
from a3c_jax.core import curves
from a3c_jax.shell.runner import run


@dataclasses.dataclass(frozen=True)
class Args:
    """Env steps to a smoothed return at several budgets."""

    algo: str = "a3c"
    env: str = "CartPole-v1"
    workers: int = 2
    backend: str = "threads"
    budgets: tuple[int, ...] = (300_000, 1_000_000)
    seeds: tuple[int, ...] = (0, 1, 2)
    threshold: float = 475.0
    set: tuple[str, ...] = ()
    """FIELD=VALUE overrides (Python literals, or strings), applied to every run."""


def overrides(pairs: tuple[str, ...]) -> dict:
    """``("lr_anneal_steps=0", ...)`` as keyword arguments of ``Config``."""
    import ast

    out = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def steps_to(config: Config, threshold: float) -> float:
    """One run's env steps to a smoothed ``threshold`` (NaN if never)."""
    result = run(config, write=False)
    return curves.updates_steps_to(result.update_rows, threshold, config.stop_window,
                                   seed=config.seeds[0])


def main(a: Args) -> None:
    extra = overrides(a.set)
    table: dict[int, list[float]] = {}
    print("budget seed steps_to")
    for budget in a.budgets:
        for seed in a.seeds:
            c = Config(algo=a.algo, env=a.env, workers=a.workers, backend=a.backend,
                       seeds=(seed,), total_steps=budget, progress=False, **extra)
            table.setdefault(budget, []).append(steps_to(c, a.threshold))
            print(f"{budget} {seed} {table[budget][-1]:.0f}", flush=True)
    for budget, xs in table.items():
        print(f"budget {budget}: median {statistics.median(xs):.0f} "
              f"({', '.join(f'{x:.0f}' for x in xs)})")


if __name__ == "__main__":
    main(tyro.cli(Args))
