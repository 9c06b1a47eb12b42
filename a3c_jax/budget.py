"""The matched budget of the A3C / A2C comparison: one base config, two shapes of parallelism.

A3C with W workers x E envs each steps W*E environments at a time; its synchronous counterpart
is A2C over N = W*E lockstep environments. Everything else comes from the same base ``Config``
and is left untouched: the segment length t_max, the network, the optimiser and its
hyperparameters, the learning-rate schedule, the seeds and the budget of env steps per seed
(the global counter T for A3C). So the two runs see the same number of environment steps, with
the same number of environments in flight, and differ only in how updates are made: many small
asynchronous updates against a shared store, or one synchronous update over the whole batch.

A2C trains its seeds one after another (``vmap_seeds=False``), so that each seed has its own
wall-clock curve, like the asynchronous runs; in env steps nothing changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from a3c_jax.config import Config

PAIR = ("a3c", "a2c")


def matched_pair(base: Config, workers: int, envs_per_worker: int,
                 out: str | os.PathLike | None = None) -> dict[str, Config]:
    """``{"a3c": W workers x E envs, "a2c": W*E envs trained seed by seed}``, both from ``base``.

    With ``out``, the runs go to ``out/a3c`` and ``out/a2c``; without it both keep ``base.out``
    (set it per run with ``replace``). Neither config is validated here.
    """
    a3c = base.replace(algo="a3c", workers=workers, envs_per_worker=envs_per_worker)
    a2c = base.replace(algo="a2c", num_envs=workers * envs_per_worker, vmap_seeds=False)
    if out is not None:
        a3c = a3c.replace(out=str(Path(out) / "a3c"))
        a2c = a2c.replace(out=str(Path(out) / "a2c"))
    return {"a3c": a3c, "a2c": a2c}
