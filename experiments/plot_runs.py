"""Compare any run directories in one figure and table: the ``a3c-plot`` command
(``a3c_jax/commands/plot_runs.py``) run from a checkout.

    python experiments/plot_runs.py runs/lstm runs/ff --labels LSTM feed-forward
"""

import sys

from a3c_jax.commands.plot_runs import Args, main, plot  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
