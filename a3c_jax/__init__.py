"""a3c_jax: asynchronous methods for deep RL (Mnih et al., 2016) in JAX.

Layers, each importing only the ones above it in this list:

* core — ``config`` and ``defaults``, ``envs``, ``distributions``, ``networks``,
  ``normalization``, ``returns``, ``losses`` and ``value_losses``, ``exploration``,
  ``rollout``, ``optim``, ``inplace``, ``checks`` (cross-field checks of ``Config``);
* algorithms — ``algorithm``: one interface for A3C / A2C and the value-based methods;
* drivers — ``sync`` (one jitted program, vmappable over seeds and learning rates);
  ``shared`` (the store), ``worker`` (the one asynchronous loop), ``threads`` / ``procs`` /
  ``ray_backend`` (launch W loops; ``shm`` their shared memory, ``resume`` a store's state),
  ``supervisor``, ``records``, ``binning`` (records into rows as they arrive);
* run shell — ``runner`` (resolve once, train, write the run directory), ``runlog``;
  ``rundir``, ``runinfo``, ``rowsink``, ``checkpoints``, ``signals`` (the run directory as
  the record of a run: checks before any work, run.json, growing curves, resume, SIGTERM);
  ``sync_run`` and ``async_run`` (the drivers under the shell);
  ``progress`` and ``loggers`` (subscribers of the logged rows: display, TensorBoard, W&B);
* edges — ``analysis``, ``tables``, ``plotting``, ``policy``, ``video``, ``budget``, ``cli``;
  ``commands/`` (the installed commands), ``experiments/``, ``notebooks/``.
"""

from a3c_jax import _xla

_xla.configure()  # before anything opens the CPU backend; see a3c_jax/_xla.py

from a3c_jax.config.schema import Config  # noqa: E402
from a3c_jax.config.defaults import resolve  # noqa: E402
from a3c_jax.core.envs import Env, make_env  # noqa: E402
from a3c_jax.drivers.synchronous import make_train  # noqa: E402
from a3c_jax.shell.runner import run, RunResult  # noqa: E402

__all__ = ["Config", "Env", "make_env", "make_train", "resolve", "run", "RunResult"]
__version__ = "0.1.0"
