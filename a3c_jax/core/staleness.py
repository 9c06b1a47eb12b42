"""Staleness models of the emulated backend: a model string becomes one tau per update.

In the emulator (``a3c_jax.drivers.emulated.program``) update i's gradient is taken at the parameters as they
were tau_i updates earlier (version i - tau_i) and applied to the current ones (version i).
``Config.staleness`` picks how tau is drawn:

* ``fixed:k``      every update reads k versions back (k >= 0);
* ``round-robin``  tau = W - 1: W workers in lockstep, each reading right after its own write,
                   so the W - 1 others write before it writes again (the default);
* ``uniform:a:b``  tau uniform on {a, ..., b}, independently per update (0 <= a <= b);
* ``geometric:p``  P(tau = k) = (1 - p)^k p for k >= 0 (mean (1 - p) / p; 0 < p <= 1);
* ``trace:PATH``   the ``staleness`` column of a run's ``updates.csv`` (PATH is the file or its
                   run directory) in update order (``version_written``): the rows of the seed
                   being emulated if the file has them, else those of its smallest seed. A
                   trace shorter than the run repeats from its start. When the run has as many
                   workers as the trace, its ``worker`` column is replayed too (``order``).

Workers take turns in round-robin order (update i is worker i mod W's), except under a
replayed trace: there the order of the real run's writes is kept, so a worker that wrote
twice in a row in the real run does so in the emulator (with round-robin order some real
taus would mean reading older parameters than the worker's own last write).

Every tau is capped by the versions written so far: update i (0-based) reads at most i
versions back. ``schedule`` returns the taus as an int32 array; the random models draw from a
key of the seed, so a schedule is a pure function of (model, seed, number of updates, W).
Nothing here compiles: ``Config.validate`` parses the model (``parse(text, check_files=False)``)
and ``config.defaults.resolve`` reads a trace, both before anything compiles.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
from pathlib import Path

import numpy as np

KINDS = ("fixed", "round-robin", "uniform", "geometric", "trace")
_STREAM = 0x57A1   # fold_in tag: the staleness draw's own stream of a seed's root key
FORMS = "fixed:k, round-robin, uniform:a:b, geometric:p or trace:PATH"


@dataclasses.dataclass(frozen=True)
class Model:
    """A parsed staleness model (see the module docstring)."""

    kind: str
    low: int = 0          # fixed: k; uniform: a
    high: int = 0         # uniform: b
    p: float = 1.0        # geometric
    path: str = ""        # trace

    @property
    def label(self) -> str:
        return {"fixed": f"fixed:{self.low}", "round-robin": "round-robin",
                "uniform": f"uniform:{self.low}:{self.high}", "geometric": f"geometric:{self.p:g}",
                "trace": f"trace:{self.path}"}[self.kind]


def _int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"staleness: {what} must be an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"staleness: {what} must be >= 0, got {value}")
    return value


def parse(text: str, check_files: bool = True) -> Model:
    """The ``Model`` of a ``--staleness`` string; ValueError naming the option otherwise.
    With ``check_files`` a trace's file must exist."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"staleness: expected {FORMS}, got {text!r}")
    kind, _, rest = text.partition(":")
    if kind == "round-robin" and not rest:
        return Model("round-robin")
    if kind == "fixed" and rest:
        return Model("fixed", low=_int(rest, "k in fixed:k"))
    if kind == "uniform" and rest.count(":") == 1:
        a, b = (_int(x, f"{n} in uniform:a:b") for x, n in zip(rest.split(":"), "ab"))
        if a > b:
            raise ValueError(f"staleness: uniform:a:b needs a <= b, got {text!r}")
        return Model("uniform", low=a, high=b)
    if kind == "geometric" and rest:
        try:
            p = float(rest)
        except ValueError:
            raise ValueError(f"staleness: p in geometric:p must be a number, got {rest!r}") \
                from None
        if not 0.0 < p <= 1.0:
            raise ValueError(f"staleness: p in geometric:p must lie in (0, 1], got {p!r}")
        return Model("geometric", p=p)
    if kind == "trace" and rest:
        if check_files:
            trace_file(rest)
        return Model("trace", path=rest)
    raise ValueError(f"staleness: expected {FORMS}, got {text!r}")


def trace_file(path: str | os.PathLike) -> Path:
    """The updates.csv a ``trace:PATH`` names (PATH itself, or PATH/updates.csv)."""
    p = Path(path)
    if p.is_dir():
        p = p / "updates.csv"
    if not p.is_file():
        raise ValueError(f"staleness: trace {str(path)!r}: no such updates.csv")
    return p


def load_traces(path: str | os.PathLike) -> dict[int | None, tuple[np.ndarray, np.ndarray]]:
    """Seed -> (staleness, worker) columns in update order (``version_written``), int64; the
    key is None for a file without a seed column, the workers are 0 without a worker column.
    Read once per file version (cached)."""
    p = trace_file(path)
    st = p.stat()
    return _load(str(p.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "staleness" not in rows[0]:
        raise ValueError(f"staleness: trace {path!r} has no staleness column (or no rows)")
    col = lambda name, default: np.array(  # noqa: E731
        [int(float(r[name])) if name in r else default(k) for k, r in enumerate(rows)])
    taus, workers = col("staleness", None), col("worker", lambda k: 0)
    seeds, order = col("seed", lambda k: -1), col("version_written", lambda k: k)
    if (taus < 0).any():
        raise ValueError(f"staleness: trace {path!r} holds negative staleness")
    out = {}
    for s in np.unique(seeds):
        idx = np.flatnonzero(seeds == s)
        idx = idx[np.argsort(order[idx], kind="stable")]
        out[None if s < 0 else int(s)] = (taus[idx], workers[idx])
    return out


def _seed_trace(path, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    traces = load_traces(path)
    return traces[seed] if seed in traces else next(iter(traces.values()))


def read_trace(path: str | os.PathLike, seed: int | None = None) -> np.ndarray:
    """The staleness column of an updates.csv in update order, for ``seed`` when the file has
    its rows, else for the file's smallest seed; int64 [num_updates]."""
    return _seed_trace(path, seed)[0]


def order(model: Model | str, num_updates: int, workers: int, seed: int) -> np.ndarray:
    """int32 [num_updates]: which worker writes each update (module docstring)."""
    if isinstance(model, str):
        model = parse(model)
    if model.kind == "trace":
        ws = _seed_trace(model.path, seed)[1]
        if len(ws) and ws.max() + 1 == workers and ws.min() >= 0:
            return np.resize(ws, num_updates).astype(np.int32)
    return (np.arange(num_updates) % workers).astype(np.int32)


def draw(model: Model, num_updates: int, workers: int, seed: int) -> np.ndarray:
    """The model's taus for ``num_updates`` updates, before the cap (int64)."""
    n = num_updates
    if model.kind == "fixed":
        return np.full(n, model.low, np.int64)
    if model.kind == "round-robin":
        return np.full(n, workers - 1, np.int64)
    if model.kind == "trace":
        taus = read_trace(model.path, seed)
        return np.resize(taus, n) if len(taus) else np.zeros(n, np.int64)
    import jax

    key = jax.random.fold_in(jax.random.key(seed), _STREAM)
    if model.kind == "uniform":
        return np.asarray(jax.random.randint(key, (n,), model.low, model.high + 1), np.int64)
    if model.p >= 1.0:
        return np.zeros(n, np.int64)
    # geometric counts trials to the first success (>= 1); tau counts the failures before it
    return np.asarray(jax.random.geometric(key, model.p, (n,)), np.int64) - 1


def min_tau(model: Model, workers: int) -> int:
    """The smallest tau the model draws before the cap (not for a trace)."""
    return {"fixed": model.low, "round-robin": workers - 1, "uniform": model.low,
            "geometric": 0}[model.kind]


def block_size(model: Model | str, workers: int) -> int:
    """How many consecutive updates can read versions written before the first of them
    (``emulator``'s block): B = min(W, min tau + 1), since every capped tau_i is either
    i or at least min tau, so tau_i >= i mod B; 1 for a trace. A function of the model and
    W alone, so a config always compiles the same program, whatever its seeds draw."""
    if isinstance(model, str):
        model = parse(model)
    if model.kind == "trace":   # its worker order need not give distinct workers per block
        return 1
    return max(1, min(workers, min_tau(model, workers) + 1))


def schedule(model: Model | str, num_updates: int, workers: int, seed: int) -> np.ndarray:
    """int32 [num_updates] taus of ``model`` for one seed, capped at the versions written so
    far (tau_i <= i)."""
    if isinstance(model, str):
        model = parse(model)
    taus = draw(model, num_updates, workers, seed)
    return np.minimum(taus, np.arange(num_updates)).astype(np.int32)
