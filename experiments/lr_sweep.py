"""Final return against the learning rate: the ``a3c-lr-sweep`` command
(``a3c_jax/commands/lr_sweep.py``) run from a checkout.

    python experiments/lr_sweep.py --num-lrs 12 --total-steps 200000 --out runs/lr_sweep
"""

import sys

from a3c_jax.commands.lr_sweep import main, sample_lrs  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
