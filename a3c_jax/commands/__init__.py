"""The package's commands (``[project.scripts]`` in pyproject.toml): argument parsing, library
calls and output only. ``experiments/*.py`` run the same ``main`` functions from a checkout.

=================  =====================  ==============================================
command            module                 does
=================  =====================  ==============================================
``a3c-train``      ``commands.train``     train one method over seeds; a run directory
``a3c-compare``    ``commands.compare``   A3C against A2C at a matched budget
``a3c-evaluate``   ``commands.evaluate``  play a saved policy; ``--video`` records one
``a3c-plot``       ``commands.plot_runs`` any run directories in one figure and table
``a3c-scaling``    ``commands.scaling``   speedup against the number of workers
``a3c-lr-sweep``   ``commands.lr_sweep``  final return against the learning rate
=================  =====================  ==============================================
"""

from __future__ import annotations

import sys
from typing import Callable


def refused(check: Callable[[], None]) -> int | None:
    """Run ``check`` (validating every config of a command, checking its run directories,
    before the first run trains); on bad input print the error, naming the flag, and return
    exit status 2; None when the input is good."""
    from a3c_jax.commands import cli
    from a3c_jax.shell import directory as rundir

    try:
        check()
    except rundir.InvalidInput as err:
        print(f"error: {cli.flag_message(str(err))}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: invalid config: {cli.flag_message(str(err))}", file=sys.stderr)
        return 2
    return None
