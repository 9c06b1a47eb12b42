"""a3c_jax: asynchronous methods for deep RL (Mnih et al., 2016) in JAX.

The folders are the layers; each imports only the ones below it (``pyproject.toml``'s
import-linter contract, checked by ``lint-imports``; docs/architecture.md has the full map):

* ``commands`` — the installed commands (``a3c-train``, ...) and the command line;
* ``analysis`` — runs read back: tables, figures, saved policies, videos;
* ``shell`` — the run shell: ``run(config)``, the run directory, progress, checkpoints;
* ``drivers`` — ``synchronous``; ``asynchronous`` (store, worker, supervisor, backends);
  ``emulated``;
* ``algorithms`` — one interface for A3C / A2C and the value-based methods;
* ``config`` — ``Config``, its per-method defaults, checks and matched pairs;
* ``core`` — pure functions: environments, networks, returns, losses, rollout, optimisers.
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
