"""a3c_jax: asynchronous methods for deep RL (Mnih et al., 2016) in JAX.

Pure core (envs, networks, returns, losses, rollout, optim) shared by a synchronous vmapped A2C
baseline and asynchronous actor-learners on a lock-free shared parameter store.
"""

from a3c_jax import _xla

_xla.configure()  # before anything opens the CPU backend; see a3c_jax/_xla.py

from a3c_jax.config import Config, resolve_defaults  # noqa: E402
from a3c_jax.envs import Env, make_env  # noqa: E402
from a3c_jax.a2c import make_train  # noqa: E402
from a3c_jax.runner import run, RunResult  # noqa: E402

__all__ = ["Config", "Env", "make_env", "make_train", "resolve_defaults", "run", "RunResult"]
__version__ = "0.1.0"
