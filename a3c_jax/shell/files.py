"""Run directories: config.json, metrics.csv, checkpoints — all written atomically.

A run directory holds ``config.json`` (the full config), ``metrics.csv`` (one row per logged
interval per seed, the same columns for every algorithm), optionally ``updates.csv`` (one row
per asynchronous update: worker, staleness...), ``params_seed{S}.msgpack`` (final parameters,
flax serialisation) and plots. Files are written to a temporary name in the same directory and
renamed, so a crash or Ctrl-C never leaves a half-written file. A write that fails (a full
disk, a file-size limit, an I/O error) raises ``WriteError``, which names the path and the
errno; the file it meant to replace is left as it was.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class WriteError(OSError):
    """A run file could not be written: ``errno`` (ENOSPC, EFBIG, EIO...) and ``filename``."""

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno, str(self.errno))
        return f"cannot write {self.filename}: {name} ({self.strerror})"


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Turn an ``OSError`` raised while writing ``path`` into a ``WriteError`` naming it (the
    error a bare ``os.write`` gives names no file)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(err.errno, err.strerror or str(err), str(path)) from err


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    with writing(path):
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


def sort_csv_lines(path: str | os.PathLike, key: Callable[[dict], Any]) -> None:
    """Rewrite the CSV file ``path`` atomically with its rows ordered by ``key`` (given each
    row as a dict of strings; stable). The lines move as they are, never re-formatted; a file
    already in order is left alone."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) < 3:
        return
    body = lines[1:]
    keys = [key(row) for row in csv.DictReader(line.decode() for line in lines)]
    if len(keys) != len(body):
        raise ValueError(f"{path}: a row spans lines; cannot order it line by line")
    order = sorted(range(len(body)), key=keys.__getitem__)
    if any(i != j for i, j in enumerate(order)):
        atomic_write_bytes(path, b"".join([lines[0], *(body[i] for i in order)]))


def write_config(run_dir: str | os.PathLike, config) -> None:
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(data, indent=2) + "\n")


def read_config(run_dir: str | os.PathLike):
    """The config.json of a run: a ``Resolved`` (what runs write), or a ``Config`` for a file
    with auto fields unset."""
    from a3c_jax.config.schema import AUTO_FIELDS, Config, Resolved

    with open(Path(run_dir) / "config.json") as f:
        data = json.load(f)
    resolved = all(data.get(name) is not None for name in AUTO_FIELDS)
    return (Resolved if resolved else Config).from_dict(data)


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
