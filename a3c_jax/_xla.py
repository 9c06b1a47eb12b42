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


# --- thread pools of the process backend's workers --------------------------------------------
# A worker process starts several pools sized to the whole machine, not to the core it runs on:
# XLA:CPU's intra-op (Eigen) pool and its client pool (both sized by ``NPROC`` when it is set,
# else by the cores the process may run on), OpenBLAS' and OpenMP's pools (NumPy), and the ALE
# vector env's threads (``a3c_jax.core.atari``, sized by ``host_cores``). With W workers on C
# cores each pool gets ``cores_per_worker(W, C)`` threads instead of C.

WORKER_CORES_ENV = "A3C_JAX_WORKER_CORES"   # cores per worker process; "all": leave the pools
PIN_ENV = "A3C_JAX_PIN_WORKERS"             # "1": pin worker w to cores [w k, (w + 1) k)
CORES_ENV = "A3C_JAX_CORES"                 # set in a worker: the cores it was given
POOL_VARS = ("NPROC", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cores_per_worker(workers: int, cpus: int, environ=os.environ) -> int | None:
    """Cores each of ``workers`` processes is given on ``cpus`` cores: ``$A3C_JAX_WORKER_CORES``
    if set (None for "all": pools as JAX sizes them), else ``max(1, cpus // workers)``."""
    own = environ.get(WORKER_CORES_ENV, "").strip()
    if own.lower() == "all":
        return None
    if own:
        return max(1, int(own))
    return max(1, cpus // max(1, workers))


def pool_env(cores: int | None, environ=os.environ) -> dict[str, str]:
    """The environment variables a worker process given ``cores`` cores starts with (only those
    that change). A variable the user set already wins, as does ``A3C_JAX_KEEP_XLA_FLAGS``
    for ``XLA_FLAGS``; ``cores=None`` changes only the Eigen flag's absence (as before)."""
    out: dict[str, str] = {}
    flags = environ.get("XLA_FLAGS", "")
    keep = environ.get("A3C_JAX_KEEP_XLA_FLAGS", "") not in ("", "0")
    if not keep and "xla_cpu_multi_thread_eigen" not in flags and (cores is None or cores == 1):
        # one thread: run Eigen's kernels on the calling thread instead of handing them off
        out["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    if cores is None:
        return out
    for var in POOL_VARS:
        if var not in environ:
            out[var] = str(cores)
    out[CORES_ENV] = str(cores)
    return out


def worker_cpus(worker: int, cores: int | None, cpus: list[int],
                environ=os.environ) -> set[int] | None:
    """The cores worker ``worker`` is pinned to, or None (no pinning): only when
    ``$A3C_JAX_PIN_WORKERS=1``, ``cores`` is known and the workers fit on ``cpus``
    (worker w takes ``cpus[w k : (w + 1) k]``, wrapping round)."""
    if environ.get(PIN_ENV, "") in ("", "0") or cores is None or cores > len(cpus):
        return None
    start = (worker * cores) % len(cpus)
    return {cpus[(start + i) % len(cpus)] for i in range(cores)}


def host_cores(environ=os.environ) -> int:
    """Cores this process may use: ``$A3C_JAX_CORES`` (a process-backend worker's share) or
    the cores in its affinity mask."""
    own = environ.get(CORES_ENV, "").strip()
    if own:
        return max(1, int(own))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- compiling while a signal can still be handled ---------------------------------------------
# Python runs a signal handler only in the main thread, between bytecodes: during an XLA compile
# (seconds to minutes, in C++) the first Ctrl-C or SIGTERM waits for the compile to end. So the
# long compiles run in a daemon thread while the main thread waits in short joins, where
# handlers run: a handler that raises (``RunSignals(raise_first=True)``) stops the wait at once,
# and so does ``should_stop`` (the drivers' poll). The abandoned compile finishes in the
# background or dies with the process; nothing waits for it.

def interruptible(fn, should_stop=lambda: None, poll_s: float = 0.05):
    """``fn()``, run in a daemon thread; its result, or its exception. While it runs, a
    signal's handler runs at once in the caller, and ``should_stop()`` (not None: stop) is
    polled every ``poll_s`` seconds: then ``KeyboardInterrupt`` is raised (the run is
    interrupted before it trained)."""
    import threading

    got: dict = {}

    def target():
        try:
            got["value"] = fn()
        except BaseException as exc:   # handed to the caller
            got["error"] = exc

    thread = threading.Thread(target=target, name="a3c_jax-compile", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(poll_s)
        if thread.is_alive() and should_stop() is not None:
            raise KeyboardInterrupt("stopped while compiling")
    if "error" in got:
        raise got["error"]
    return got["value"]
