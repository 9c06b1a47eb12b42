"""Update records into metrics.csv rows, by env steps or by time, after a run or as it runs.

A row closes when the next record (in env-step order) falls into another interval of
``interval`` env steps, or when it comes ``log_seconds`` or more of training time after the
row's first record (0: by env steps only). So a cut run still has a curve, however large its
budget. ``RowBuilder`` applies the rule to records fed in env-step order;
``records.rows_from_records`` feeds it every record of a seed at once, and ``StreamBinner``
feeds it while workers still run: only the complete prefix of the records (``WorkerMerge``: up
to the smallest env step any worker last reported; each worker reports in increasing env-step
order, so nothing at or below it can still come) is binned, so the rows written during a run
are exactly the rows binning all records afterwards would give. The asynchronous early stop
(``records.RecordsMonitor``) reads the same merge.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable

from a3c_jax.core import curves

SUMMED = tuple(f for f in curves.RowSums._fields[1:]
               if f not in curves.SIGNALS and not f.endswith("_updates"))
"""The fields of ``curves.RowSums`` a row sums over all its records (not the update count,
nor the signals, which skip the records without one: ``row_sums``)."""


def row_sums(rs: list) -> curves.RowSums:
    """The ``curves.RowSums`` of a row's records: plain sums, and each signal summed and
    counted over the records where it is not NaN."""
    sums = {f: sum(getattr(r, f) for r in rs) for f in SUMMED}
    for f in curves.SIGNALS:
        vals = [v for r in rs if not math.isnan(v := float(getattr(r, f)))]
        sums[f], sums[f + "_updates"] = sum(vals), len(vals)
    return curves.RowSums(len(rs), **sums)


class RowBuilder:
    """Accumulates records fed in env-step order; ``add`` returns a row when one closes."""

    def __init__(self, label: str, seed: int, interval: int, log_seconds: float = 0.0):
        self.label, self.seed = label, seed
        self.interval, self.log_seconds = interval, log_seconds
        self.current: list = []
        self.key = 0
        self.start = 0.0

    def add(self, r) -> dict | None:
        key = math.ceil(r.env_steps / self.interval)
        row = None
        if self.current and (key != self.key or (
                self.log_seconds > 0 and r.wall_time_s - self.start >= self.log_seconds)):
            row = self.flush()
        if not self.current:
            self.key, self.start = key, r.wall_time_s
        self.current.append(r)
        return row

    def flush(self) -> dict | None:
        """The open row, closed (None when empty)."""
        rs, self.current = self.current, []
        if not rs:
            return None
        return curves.metrics_row(self.label, self.seed, max(r.env_steps for r in rs),
                                  max(r.wall_time_s for r in rs), row_sums(rs))


def order(r) -> tuple[int, int]:
    """The order records are binned in: env steps, then the version they wrote."""
    return r.env_steps, r.version_written


def bin_records(builder: RowBuilder, records) -> list[dict]:
    """Every record of one seed through ``builder``, the last row included."""
    rows = [row for r in sorted(records, key=order) if (row := builder.add(r)) is not None]
    last = builder.flush()
    return rows + ([last] if last is not None else [])


class WorkerMerge:
    """The records of W workers (``per_worker``: lists the backends append to) merged in
    ``order`` while they run.

    ``take()`` collects the records that arrived since the last call (mapped by ``transform``)
    and returns them in arrival order; ``ordered()`` then returns, in ``order``, those of the
    complete prefix: up to the smallest env step any worker last reported (each worker reports
    in increasing env-step order, so nothing at or below it can still come).
    ``ordered(final=True)`` returns everything taken, once the workers have stopped."""

    def __init__(self, per_worker: list[list], transform: Callable | None = None):
        self.per_worker = per_worker
        self.transform = transform or (lambda r: r)
        self.seen = [0] * len(per_worker)
        self.last = [0] * len(per_worker)
        self.pending: list[tuple] = []
        self.taken = 0

    def take(self) -> list:
        new = []
        for w, rs in enumerate(self.per_worker):
            n = len(rs)
            for r in rs[self.seen[w]:n]:
                r = self.transform(r)
                new.append(r)
                self.taken += 1   # ties in ``order`` keep their arrival order
                heapq.heappush(self.pending, (*order(r), self.taken, r))
                self.last[w] = r.env_steps
            self.seen[w] = n
        return new

    def ordered(self, final: bool = False) -> list:
        complete = math.inf if final else min(self.last, default=0)
        out = []
        while self.pending and self.pending[0][0] <= complete:
            out.append(heapq.heappop(self.pending)[-1])
        return out


class StreamBinner:
    """Bins the records of W workers (``per_worker``: lists the backends append to) while they
    run, over their complete prefix (``WorkerMerge``). ``poll()`` hands newly closed rows to
    ``on_rows`` and new records, in arrival order, to ``on_records``; ``finish()`` bins
    whatever is left once the workers have stopped. ``transform`` maps each record before
    anything sees it (a resumed run shifts its clock)."""

    def __init__(self, per_worker: list[list], builder: RowBuilder,
                 on_rows: Callable[[list[dict]], None],
                 on_records: Callable[[list], None] | None = None,
                 transform: Callable | None = None):
        self.merge, self.builder = WorkerMerge(per_worker, transform), builder
        self.on_rows, self.on_records = on_rows, on_records
        self.rows: list[dict] = []
        self.records: list = []

    def _bin(self, final: bool) -> None:
        new = self.merge.take()
        self.records += new
        if new and self.on_records is not None:
            self.on_records(new)
        rows = [row for r in self.merge.ordered(final)
                if (row := self.builder.add(r)) is not None]
        if final and (last := self.builder.flush()) is not None:
            rows.append(last)
        if rows:
            self.rows += rows
            self.on_rows(rows)

    def poll(self) -> None:
        self._bin(final=False)

    def finish(self) -> None:
        self._bin(final=True)
