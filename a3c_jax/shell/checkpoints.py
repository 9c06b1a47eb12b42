"""The training state of a run, saved so that ``--resume`` can continue it.

One file, ``checkpoint.msgpack`` in the run directory (flax msgpack, written atomically: a
crash or SIGKILL leaves the previous checkpoint whole), holds one entry per seed:

* synchronous seeds (``kind`` "sync"): the whole ``sync.TrainState`` — parameters, optax
  state, every environment's state, recurrent carries, exploration schedules, the PRNG key,
  the update counter, target parameters — as its flat list of leaves (PRNG keys as their key
  data). Resuming from it continues the scan exactly where it stopped: the same parameters
  an uninterrupted run reaches, bit for bit.
* asynchronous seeds (``kind`` "async"): the shared store's buffers (parameters, shared
  RMSProp statistics, target parameters, lost-update probe) and counters (T, version, target
  copies), and each worker's number of updates. What is re-derived on resume is said in
  ``a3c_jax.drivers.asynchronous.store_state``.

Each entry also holds ``env_steps`` (the seed's env steps at the checkpoint), ``wall_time_s``
(its training seconds, so the resumed curve's clock continues), ``resumes`` (how many times
the seed was resumed), ``done`` (the seed reached its budget) and ``stopped`` (early stop).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from a3c_jax.shell import files as runlog

FILENAME = "checkpoint.msgpack"
FORMAT = 1


def path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FILENAME


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_host(tree) -> list[np.ndarray]:
    """The leaves of ``tree`` as NumPy arrays (PRNG keys as their key data)."""
    return [np.asarray(jax.random.key_data(x) if _is_key(x) else x)
            for x in jax.tree.leaves(jax.device_get(tree))]


def from_host(template, leaves: list[np.ndarray]):
    """``leaves`` (from ``to_host``) in the structure of ``template``; ValueError when they do
    not fit (another config wrote them)."""
    want = jax.tree.leaves(template)
    treedef = jax.tree.structure(template)
    if len(leaves) != len(want):
        raise ValueError(f"checkpoint: {len(leaves)} arrays where this config's training state "
                         f"has {len(want)} (was it written by another config?)")
    out = []
    for i, (got, t) in enumerate(zip(leaves, want)):
        if _is_key(t):
            impl = jax.random.key_impl(t)
            got_key = jax.random.wrap_key_data(jnp.asarray(got), impl=impl)
            if got_key.shape != t.shape:
                raise ValueError(f"checkpoint: key {i} has shape {got_key.shape}, not {t.shape}")
            out.append(got_key)
        else:
            if np.shape(got) != np.shape(t):
                raise ValueError(f"checkpoint: array {i} has shape {np.shape(got)} where this "
                                 f"config's training state has {np.shape(t)}")
            out.append(jnp.asarray(got, dtype=t.dtype))
    return jax.tree.unflatten(treedef, out)


def sync_entry(state_leaves: list[np.ndarray], env_steps: int, updates: int,
               wall_time_s: float, resumes: int, done: bool, stopped: bool = False) -> dict:
    return {"kind": "sync", "env_steps": int(env_steps), "updates": int(updates),
            "wall_time_s": float(wall_time_s), "resumes": int(resumes), "done": bool(done),
            "stopped": bool(stopped),
            "leaves": {str(i): np.asarray(x) for i, x in enumerate(state_leaves)}}


def sync_leaves(entry: dict) -> list[np.ndarray]:
    leaves = entry["leaves"]
    return [leaves[str(i)] for i in range(len(leaves))]


def async_entry(store: dict, worker_updates: list[int], wall_time_s: float, resumes: int,
                done: bool, stopped: bool = False) -> dict:
    return {"kind": "async", "env_steps": int(store["counters"][0]),
            "wall_time_s": float(wall_time_s), "resumes": int(resumes), "done": bool(done),
            "stopped": bool(stopped),
            "store": {k: np.asarray(v) for k, v in store.items() if v is not None},
            "worker_updates": {str(w): int(n) for w, n in enumerate(worker_updates)}}


def save(run_dir: str | os.PathLike, entries: dict[int, dict]) -> None:
    data = {"format": FORMAT, "seeds": {str(s): e for s, e in sorted(entries.items())}}
    runlog.atomic_write_bytes(path(run_dir), serialization.msgpack_serialize(data))


def load(run_dir: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """The entries of a run directory's checkpoint by seed ({} when there is none);
    ValueError when the file cannot be read."""
    p = path(run_dir)
    if not p.exists():
        return {}
    try:
        data = serialization.msgpack_restore(p.read_bytes())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return {int(s): e for s, e in data["seeds"].items()}
    except Exception as err:  # msgpack raises several types on corrupt input
        raise ValueError(f"{p}: not a readable checkpoint ({type(err).__name__}: {err})"
                         ) from None
