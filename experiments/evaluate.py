"""Evaluate saved parameters (and record a video of an episode): the ``a3c-evaluate``
command (``a3c_jax/commands/evaluate.py``) run from a checkout.

    python experiments/evaluate.py runs/demo/a3c --episodes 100 --video runs/demo/a3c.gif
"""

import sys

from a3c_jax.commands.evaluate import main, run, seed_report  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
