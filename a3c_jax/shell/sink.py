"""The rows of a run as they are logged, and the subscribers that follow them.

Every driver feeds one ``RowSink`` while it trains: the synchronous driver a row per seed as
each row closes, the asynchronous supervisor the rows of the complete prefix of the records
(``binning.StreamBinner``) and every update record. A subscriber is any object with some of
``rows(rows)`` (new ``metrics.csv`` rows, dicts), ``updates(rows)`` (new ``updates.csv`` rows),
``flush()`` and ``close()``; the sink calls the ones it has, in subscription order. The
run directory's ``CsvAppender`` is one subscriber; a progress display or a TensorBoard
writer is another (``runner.run(..., subscribers=...)``).

``CsvAppender`` appends to ``metrics.csv`` at every row and to ``updates.csv`` every
``flush_s`` seconds, each batch as whole lines in one ``write`` call followed by ``fsync``,
so a process killed with SIGKILL loses at most the last interval of update records and never
leaves half a row that a later run cannot read (``repair_csv`` cuts a torn last line, e.g. on
a full disk). When the run ends the runner rewrites both files atomically in their usual
order: metrics.csv from the rows gathered; updates.csv from the rows gathered when the run has
no directory (``keep_updates``), else from the file itself, so a long run does not hold one row
per update in memory.
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Sequence

from a3c_jax.core import curves
from a3c_jax.shell import files as runlog


class RowSink:
    """Collects a run's rows and hands each batch to the subscribers."""

    def __init__(self, subscribers: Sequence = (), keep_updates: bool = True):
        self.subscribers = list(subscribers)
        self.rows: list[dict] = []
        self.keep_updates = keep_updates   # else the subscribers alone receive them
        self.update_rows: list[dict] = []
        self.phase_times: dict[str, float] = {}

    def subscribe(self, subscriber) -> None:
        self.subscribers.append(subscriber)

    def _call(self, name: str, *args) -> None:
        for s in self.subscribers:
            fn = getattr(s, name, None)
            if fn is not None:
                fn(*args)

    def add_rows(self, rows: list[dict]) -> None:
        if rows:
            # the first rows start training where no driver said so (workers compile apart)
            self.phase_times.setdefault("train", time.perf_counter())
            self.rows += rows
            self._call("rows", rows)

    def add_updates(self, rows: list[dict]) -> None:
        if rows:
            if self.keep_updates:
                self.update_rows += rows
            self._call("updates", rows)

    def phase(self, name: str) -> None:
        """Tell the subscribers what the run does now ("compile", "train"); the first time
        of each phase is kept (``setup_s``)."""
        self.phase_times.setdefault(name, time.perf_counter())
        self._call("phase", name)

    def setup_s(self) -> float | None:
        """Seconds from the start of compilation to the start of training (environments,
        parameters, compilation and, on the process and Ray backends, the workers' start-up:
        what the display says "compiled and initialised" in); None before training."""
        times = self.phase_times
        return times["train"] - times["compile"] if {"compile", "train"} <= set(times) else None

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")


def _lines(columns: Sequence[str], rows: list[dict], header: bool) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: runlog._fmt(row.get(k, "")) for k in columns})
    return buf.getvalue().encode()


def repair_csv(path: Path) -> None:
    """Cut a torn last line (a write cut short) so the file reads as whole rows."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        runlog.atomic_write_bytes(path, data[:data.rfind(b"\n") + 1])


class _Appender:
    def __init__(self, path: Path, columns: Sequence[str]):
        self.path, self.columns = path, columns
        self.pending: list[dict] = []

    def write(self) -> None:
        if not self.pending:
            return
        header = not self.path.exists() or self.path.stat().st_size == 0
        data = _lines(self.columns, self.pending, header)
        with runlog.writing(self.path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                done = 0
                while done < len(data):   # a short write (a size limit) leaves a torn line
                    done += os.write(fd, data[done:])   # the next one raises (EFBIG, ENOSPC)
                os.fsync(fd)
            finally:
                os.close(fd)
        self.pending = []


class CsvAppender:
    """A subscriber that keeps ``metrics.csv`` and ``updates.csv`` growing with the run."""

    def __init__(self, run_dir: str | os.PathLike, flush_s: float = 2.0):
        run_dir = Path(run_dir)
        self._metrics = _Appender(run_dir / "metrics.csv", curves.METRIC_COLUMNS)
        self._updates = _Appender(run_dir / "updates.csv", curves.UPDATE_COLUMNS)
        self.flush_s = flush_s
        self.last = time.monotonic()

    def rows(self, rows: list[dict]) -> None:
        self._metrics.pending += rows
        self._metrics.write()
        self._maybe_flush()

    def updates(self, rows: list[dict]) -> None:
        self._updates.pending += rows
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        self._metrics.write()
        self._updates.write()
        self.last = time.monotonic()

    def close(self) -> None:
        self.flush()
