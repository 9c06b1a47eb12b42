"""Train one algorithm on one environment over several seeds: the ``a3c-train`` command
(``a3c_jax/commands/train.py``) run from a checkout.

    python experiments/train.py --algo a2c --env CartPole-v1 --num-envs 16 \
        --total-steps 500000 --seeds 0 1 2 --out runs/a2c_cartpole
"""

import sys

from a3c_jax.commands.train import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
