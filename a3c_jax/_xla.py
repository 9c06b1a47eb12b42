"""XLA:CPU settings applied when ``a3c_jax`` is imported, before JAX opens its CPU backend.

``--xla_cpu_enable_concurrency_optimized_scheduler=false``: with the concurrency-optimised
scheduler (the default of jaxlib 0.10), the vmapped recurrent A2C update (an LSTM unrolled inside
``lax.scan``, two seeds under ``vmap``) deadlocks on its first call on a 2-core machine: every
XLA thread waits, the host waits on the result, and nothing ever runs again. With the flag off it
runs, and it is not slower anywhere we measured (sync A2C on CartPole, one 2-core machine:
16 envs 524k -> 540k env steps/s, 1 env 79k -> 120k, LSTM 16 envs 87k -> 113k).

The flag is appended to ``XLA_FLAGS`` only when the user has not set it; set
``A3C_JAX_KEEP_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` exactly as it is. Subprocesses (the process
backend, the experiment scripts run by tests) inherit the setting through the environment.
"""

from __future__ import annotations

import os
import warnings

FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def configure() -> list[str]:
    """Append the flags in ``FLAGS`` that ``XLA_FLAGS`` does not mention yet; returns them."""
    if os.environ.get("A3C_JAX_KEEP_XLA_FLAGS", "") not in ("", "0"):
        return []
    current = os.environ.get("XLA_FLAGS", "")
    added = [f for f in FLAGS if f.split("=")[0] not in current]
    if not added:
        return []
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except Exception:  # private API moved: assume not started
        started = False
    if started:
        warnings.warn("a3c_jax was imported after JAX initialised its backends, so XLA_FLAGS "
                      f"{' '.join(added)} cannot take effect; import a3c_jax first or set them "
                      "in the environment", RuntimeWarning, stacklevel=3)
        return []
    os.environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
