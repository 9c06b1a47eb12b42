"""A3C against A2C at a matched budget: the ``a3c-compare`` command
(``a3c_jax/commands/compare.py``) run from a checkout.

    python experiments/compare.py --out runs/demo
"""

import sys

from a3c_jax.commands.compare import Args, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
