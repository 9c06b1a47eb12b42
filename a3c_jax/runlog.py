"""Run directories: config.json, metrics.csv, checkpoints — all written atomically.

A run directory holds ``config.json`` (the full config), ``metrics.csv`` (one row per logged
interval per seed, the same columns for every algorithm), optionally ``updates.csv`` (one row
per asynchronous update: worker, staleness...), ``params_seed{S}.msgpack`` (final parameters,
flax serialisation) and plots. Files are written to a temporary name in the same directory and
renamed, so a crash or Ctrl-C never leaves a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

METRIC_COLUMNS = ("algo", "seed", "env_steps", "wall_time_s", "episode_return", "episodes",
                  "policy_loss", "value_loss", "entropy", "total_loss", "staleness")
UPDATE_COLUMNS = ("seed", "worker", "update", "env_steps", "wall_time_s", "version_read",
                  "version_written", "staleness", "return_sum", "episodes")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k, "")) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else f"{float(v):.6g}"
    if isinstance(v, np.integer):
        return int(v)
    return v


def read_csv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_config(run_dir: str | os.PathLike, config) -> None:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(data, indent=2) + "\n")


def read_config(run_dir: str | os.PathLike):
    from a3c_jax.config import Config

    with open(Path(run_dir) / "config.json") as f:
        return Config.from_dict(json.load(f))


def save_params(run_dir: str | os.PathLike, seed: int, params) -> Path:
    """Serialise a parameter pytree with flax (msgpack), atomically."""
    from flax import serialization
    import jax

    path = Path(run_dir) / f"params_seed{seed}.msgpack"
    atomic_write_bytes(path, serialization.to_bytes(jax.device_get(params)))
    return path


def load_params(run_dir: str | os.PathLike, seed: int, template):
    """Load parameters saved by ``save_params`` into the structure of ``template``.

    Raises ValueError when the checkpoint's tree or any array shape differs from the template
    (flax would otherwise drop or keep mismatched entries silently).
    """
    import jax
    from flax import serialization

    path = Path(run_dir) / f"params_seed{seed}.msgpack"
    with open(path, "rb") as f:
        raw = serialization.msgpack_restore(f.read())
    want = serialization.to_state_dict(template)
    if jax.tree.structure(raw) != jax.tree.structure(want):
        raise ValueError(f"{path}: checkpoint structure does not match the network "
                         f"(was it trained with another config?)")
    for a, b in zip(jax.tree.leaves(raw), jax.tree.leaves(want)):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{path}: checkpoint array of shape {np.shape(a)} where the "
                             f"network has {np.shape(b)}")
    return serialization.from_state_dict(template, raw)


def aggregate(rows: Sequence[dict], key: str = "episode_return", weight: str = "episodes"
              ) -> float:
    """Episode-weighted mean of ``key`` over rows; NaN when no episode completed."""
    num = sum(float(r[key]) * float(r[weight]) for r in rows
              if r.get(weight) and float(r[weight]) > 0 and not math.isnan(float(r[key])))
    den = sum(float(r[weight]) for r in rows if r.get(weight) and float(r[weight]) > 0)
    return num / den if den > 0 else float("nan")


def smoothed_returns(env_steps: np.ndarray, episode_return: np.ndarray, episodes: np.ndarray,
                     window_steps: int) -> np.ndarray:
    """Episode-weighted moving average of completed-episode returns over a trailing window of
    ``window_steps`` env steps; NaN until the first episode completes.

    Inputs are 1-D, one entry per update or logged row (``episode_return`` is the mean return
    of the ``episodes`` completed in that entry).
    """
    env_steps = np.asarray(env_steps, np.float64)
    w = np.nan_to_num(np.asarray(episode_return, np.float64)) * np.asarray(episodes, np.float64)
    n = np.asarray(episodes, np.float64)
    cs_w = np.concatenate([[0.0], np.cumsum(w)])
    cs_n = np.concatenate([[0.0], np.cumsum(n)])
    start = np.searchsorted(env_steps, env_steps - window_steps, side="right")
    idx = np.arange(len(env_steps)) + 1
    num = cs_w[idx] - cs_w[start]
    den = cs_n[idx] - cs_n[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def steps_to_threshold(env_steps: np.ndarray, smoothed: np.ndarray, threshold: float) -> float:
    """First env step at which the smoothed return reaches ``threshold``; NaN if never."""
    hit = np.nonzero(np.nan_to_num(smoothed, nan=-np.inf) >= threshold)[0]
    return float(np.asarray(env_steps)[hit[0]]) if len(hit) else float("nan")


def rows_steps_to(rows: Sequence[dict], threshold: float, window_steps: int = 10_000,
                  seed: int | None = None) -> float:
    """Env steps at which a seed's smoothed return (metrics.csv rows) first reaches
    ``threshold``; NaN if it never does."""
    rs = [r for r in rows if seed is None or int(r["seed"]) == seed]
    steps = np.array([float(r["env_steps"]) for r in rs])
    ret = np.array([float(r["episode_return"]) if r["episode_return"] not in ("", None)
                    else np.nan for r in rs])
    eps = np.array([float(r["episodes"]) for r in rs])
    return steps_to_threshold(steps, smoothed_returns(steps, ret, eps, window_steps), threshold)


def updates_steps_to(update_rows: Sequence[dict], threshold: float, window_steps: int = 10_000,
                     seed: int | None = None) -> float:
    """Env steps at which a seed's smoothed return over its per-update records
    (``updates.csv`` rows of an asynchronous run) first reaches ``threshold``; NaN if never.
    This is the statistic the asynchronous early stop (``stop_return``) uses, exactly."""
    rs = sorted((r for r in update_rows if seed is None or int(r["seed"]) == seed),
                key=lambda r: float(r["env_steps"]))
    steps = np.array([float(r["env_steps"]) for r in rs])
    eps = np.array([float(r["episodes"]) for r in rs])
    ret = np.array([float(r["return_sum"]) / e if e else np.nan
                    for r, e in zip(rs, eps)])
    return steps_to_threshold(steps, smoothed_returns(steps, ret, eps, window_steps), threshold)
