"""The figure a run directory holds: returns.png, one smoothed line per seed (and, dashed in
the seed's colour, its greedy evaluations when the run made them: ``eval_return``).

Written by the run shell when a run ends (``runner.run``); ``save_figure`` saves any figure
atomically, and the analysis figures (``a3c_jax.analysis.figures``) use it too.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from a3c_jax.core import curves  # noqa: E402


def run_series(rows: Sequence[dict]):
    """(seed, env steps, episode return, episodes) per seed of metrics.csv rows, as arrays
    (``curves.row_arrays``)."""
    by_seed = defaultdict(list)
    for r in rows:
        by_seed[int(r["seed"])].append(r)
    for seed, rs in sorted(by_seed.items()):
        yield (seed, *curves.row_arrays(rs))


def plot_run(rows: Sequence[dict], path: str | os.PathLike, title: str = "",
             window_steps: float = curves.SMOOTH_WINDOW) -> Path:
    """Return against env steps, one line per seed smoothed over ``window_steps`` env steps
    (the y label says how many), its greedy evaluations dashed in the same colour; saved
    atomically as PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    greedy = False
    for seed, steps, ret, eps in run_series(rows):
        line, = ax.plot(steps, curves.smoothed_returns(steps, ret, eps, window_steps),
                        label=f"seed {seed}")
        e_steps, e_ret = curves.eval_arrays([r for r in rows if int(r["seed"]) == seed])
        if e_steps.size:
            greedy = True
            ax.plot(e_steps, e_ret, ls="--", color=line.get_color(),
                    label=f"seed {seed} greedy")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"episode return ({curves.window_text(window_steps)}"
                  + ("; dashed: greedy evaluation)" if greedy else ")"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a figure atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.png'}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
