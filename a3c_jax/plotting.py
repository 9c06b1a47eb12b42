"""Plots of learning curves. Side effects only; everything reads metrics.csv-style rows."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from a3c_jax import runlog  # noqa: E402


def _series(rows: Sequence[dict]):
    by_seed = defaultdict(list)
    for r in rows:
        by_seed[int(r["seed"])].append(r)
    for seed, rs in sorted(by_seed.items()):
        steps = np.array([float(r["env_steps"]) for r in rs])
        ret = np.array([float(r["episode_return"]) if r["episode_return"] not in ("", None)
                        else np.nan for r in rs])
        eps = np.array([float(r["episodes"]) for r in rs])
        yield seed, steps, ret, eps


def plot_run(rows: Sequence[dict], path: str | os.PathLike, title: str = "",
             window_frac: float = 0.02) -> Path:
    """Return against env steps, one smoothed line per seed; saved atomically as PNG."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, steps, ret, eps in _series(rows):
        window = max(window_frac * steps.max(), 1.0)
        ax.plot(steps, runlog.smoothed_returns(steps, ret, eps, window), label=f"seed {seed}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return (smoothed)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
