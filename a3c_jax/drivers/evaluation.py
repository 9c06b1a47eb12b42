"""Greedy evaluations during training (``eval_every``): when one falls, and which row shows it.

Evaluation ``k`` is due once a seed's env steps reach ``k * eval_every``; it plays
``eval_episodes`` greedy episodes (``a3c_jax.algorithms.evaluation``) with the parameters of
that moment and its own key ``eval_key(seed, k)``, never a training key. Its mean return is
the ``eval_return`` of the first metrics row logged at or after the env steps it was taken at
(rows without one leave the cell blank). Every driver evaluates between its units of work:
the synchronous driver at a row boundary, the asynchronous supervisor at a tick (a snapshot
of the store, the workers running on), the emulator between chunks.
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import numpy as np

from a3c_jax.algorithms import evaluation

COLUMN = "eval_return"


class Evaluator:
    """Plays the evaluations of one run; ``seconds`` is the time they took, in total."""

    def __init__(self, config, seeds: int = 0):
        """``seeds`` > 0: parameters and keys carry a leading seed axis of that size."""
        self.every = int(config.eval_every)
        self.play = (evaluation.compiled_evaluate(config, int(config.eval_episodes),
                                                  seeds=seeds) if self.every else None)
        self.seconds = 0.0

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def index(self, env_steps: int) -> int:
        """The last evaluation due at ``env_steps``: ``env_steps // eval_every``."""
        return int(env_steps) // self.every

    def returns(self, params, seeds: Sequence[int] | int, index: int) -> np.ndarray | float:
        """Mean greedy return of evaluation ``index`` for one seed (an int; unbatched
        params) or a group (a sequence; params with a leading seed axis)."""
        t = time.perf_counter()
        if isinstance(seeds, int):
            key = evaluation.eval_key(seeds, index)
        else:
            key = jax.numpy.stack([evaluation.eval_key(s, index) for s in seeds])
        got = np.asarray(jax.device_get(self.play(params, key).mean_return), np.float64)
        self.seconds += time.perf_counter() - t
        return float(got) if isinstance(seeds, int) else got


class Pending:
    """Evaluations waiting for the row that shows them: ``add(env_steps, value)``, then
    ``attach(rows)`` sets ``eval_return`` on the first row (of one seed, in env-step order)
    whose ``env_steps`` is at or after each one; a later evaluation that meets the same row
    replaces an earlier one."""

    def __init__(self):
        self.items: list[tuple[int, float]] = []
        self.last = 0   # env steps of the last evaluation added

    def add(self, env_steps: int, value: float) -> None:
        self.items.append((int(env_steps), float(value)))
        self.last = int(env_steps)

    def attach(self, rows: list[dict]) -> list[dict]:
        for row in rows:
            here = [v for s, v in self.items if s <= int(row["env_steps"])]
            if here:
                row[COLUMN] = here[-1]
                self.items = [(s, v) for s, v in self.items if s > int(row["env_steps"])]
        return rows
