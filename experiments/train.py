"""Train one algorithm on one environment over several seeds.

    python experiments/train.py --algo a2c --env CartPole-v1 --num-envs 16 \
        --total-steps 500000 --seeds 0 1 2 --out runs/a2c_cartpole

Writes runs/NAME/{config.json, metrics.csv, returns.png, params_seed*.msgpack}.
"""

from __future__ import annotations

import sys

import tyro

from a3c_jax.config import Config
from a3c_jax.runner import run


def main(argv: list[str] | None = None) -> int:
    config = tyro.cli(Config, args=argv, description=__doc__)
    try:
        config.validate()
    except ValueError as err:
        print(f"error: invalid config: {err}", file=sys.stderr)
        return 2
    try:
        result = run(config)
    except KeyboardInterrupt:  # before training started (e.g. during compilation)
        print("interrupted before training started; nothing to write", file=sys.stderr)
        return 130
    where = result.run_dir
    status = "interrupted; partial results" if result.interrupted else "done"
    print(f"{status}: {len(result.rows)} rows in {where}/metrics.csv; plot {where}/returns.png")
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
