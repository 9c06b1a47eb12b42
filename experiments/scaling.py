"""Speedup against the number of workers: the ``a3c-scaling`` command
(``a3c_jax/commands/scaling.py``) run from a checkout.

    python experiments/scaling.py --workers 1 2 4 8 --total-steps 500000 --out runs/scaling
"""

import sys

from a3c_jax.commands.scaling import main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
