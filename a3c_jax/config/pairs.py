"""The matched budget of the async / sync comparison: one base config, two shapes of parallelism.

Any method runs both ways. Asynchronously, W workers x E envs each step W*E environments at a
time against the shared store; its synchronous counterpart runs the same method over N = W*E
lockstep environments with one update per round (A3C's is A2C, ``algo a2c``; a value method's
is the same ``algo`` with ``backend sync``, its rows labelled ``<algo>_sync``). Everything else
comes from the same base ``Config`` and is left untouched: the segment length t_max, the
segments and how the loss combines them, the network, the optimiser and its hyperparameters,
the learning-rate schedule, the exploration schedule and target interval of the value methods,
the seeds and the budget of env steps per seed (the global counter T asynchronously). So the
two runs see the same number of environment steps, with the same number of environments in
flight, and differ only in how updates are made.

The synchronous run trains its seeds one after another (``vmap_seeds=False``), so that each
seed has its own wall-clock curve, like the asynchronous runs; in env steps nothing changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from a3c_jax.config.schema import VALUE_ALGOS, Config

PAIR = ("a3c", "a2c")
"""The labels of the actor-critic's pair (``pair_labels("a3c")``)."""
METHODS = ("a3c",) + VALUE_ALGOS


def method_of(algo: str) -> str:
    """The method a label names: a2c is A3C's synchronous form; ``nq_sync`` is nq's."""
    name = "a3c" if algo == "a2c" else algo.removesuffix("_sync")
    if name not in METHODS:
        raise ValueError(f"algo: {algo!r} is not one of {', '.join(METHODS)} (or a2c, "
                         "<algo>_sync)")
    return name


def pair_labels(algo: str) -> tuple[str, str]:
    """(asynchronous label, synchronous label) of a method: ('a3c', 'a2c'), ('nq', 'nq_sync')."""
    method = method_of(algo)
    return PAIR if method == "a3c" else (method, f"{method}_sync")


def matched_pair(base: Config, workers: int, envs_per_worker: int,
                 out: str | os.PathLike | None = None) -> dict[str, Config]:
    """``{async label: W workers x E envs, sync label: W*E envs trained seed by seed}`` for
    ``base.algo`` (a3c or a2c give A3C / A2C), both from ``base``.

    The asynchronous side keeps ``base.backend`` (threads where it is ``sync``). With ``out``,
    the runs go to ``out/<label>``; without it both keep ``base.out`` (set it per run with
    ``replace``). Neither config is validated here.
    """
    method = method_of(base.algo)
    async_label, sync_label = pair_labels(method)
    backend = "threads" if base.backend == "sync" else base.backend
    if method == "a3c":
        asyn = base.replace(algo="a3c", workers=workers, envs_per_worker=envs_per_worker)
        sync = base.replace(algo="a2c", num_envs=workers * envs_per_worker, vmap_seeds=False)
    else:
        asyn = base.replace(algo=method, workers=workers, envs_per_worker=envs_per_worker,
                            backend=backend)
        sync = base.replace(algo=method, backend="sync", num_envs=workers * envs_per_worker,
                            vmap_seeds=False)
    if method == "a3c" and base.backend == "sync":
        asyn = asyn.replace(backend=backend)
    if out is not None:
        asyn = asyn.replace(out=str(Path(out) / async_label))
        sync = sync.replace(out=str(Path(out) / sync_label))
    return {async_label: asyn, sync_label: sync}
