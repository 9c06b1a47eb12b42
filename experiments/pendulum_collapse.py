"""Figures of the Pendulum collapse (docs/results.md): return, sigma and value loss against env
steps from runs' metrics.csv.

    python experiments/pendulum_collapse.py --runs OLD_RUN BEFORE_RUN AFTER_RUN \
        --labels "lr over the budget" "obs norm, lr over 500k" "defaults" \
        --out docs/figures/pendulum_collapse.png

One column per run, rows: smoothed return (10k-step window), mean sigma, value loss; one
line per seed.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from a3c_jax.core import curves  # noqa: E402

PANELS = (("return", "smoothed return"), ("sigma", "sigma (mean std)"),
          ("value_loss", "value loss"))


def seed_curves(frame: pd.DataFrame, max_steps: float):
    """(seed, env steps, smoothed return, sigma, value loss) per seed, up to ``max_steps``."""
    for seed, x in frame.groupby("seed"):
        x = x.sort_values("env_steps")
        x = x[x.env_steps <= max_steps]
        t = x.env_steps.to_numpy()
        sm = curves.smoothed_returns(t, x.episode_return.to_numpy(), x.episodes.to_numpy(),
                                     curves.SMOOTH_WINDOW)
        yield seed, t, {"return": sm, "sigma": x.sigma.to_numpy(),
                        "value_loss": x.value_loss.to_numpy()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True)
    parser.add_argument("--labels", nargs="+", required=True)
    parser.add_argument("--max-steps", type=float, default=np.inf)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fig, axes = plt.subplots(len(PANELS), len(args.runs), sharex="col", squeeze=False,
                             figsize=(4.2 * len(args.runs), 7.5))
    for col, (run, label) in enumerate(zip(args.runs, args.labels)):
        for seed, t, ys in seed_curves(pd.read_csv(f"{run}/metrics.csv"), args.max_steps):
            for row, (key, name) in enumerate(PANELS):
                axes[row, col].plot(t, ys[key], lw=0.8, label=f"seed {seed}")
                axes[row, col].set_ylabel(name)
        axes[0, col].set_title(label, fontsize=9)
        axes[0, col].axhline(-250, color="k", lw=0.5, ls="--")
        axes[2, col].set_yscale("log")
        axes[-1, col].set_xlabel("env steps")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
