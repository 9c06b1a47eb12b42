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
(``records.RecordsMonitor``) reads the same merge. A run that streams its records to disk
hands the backends ``RecordLog``s instead of lists: they forget each record once every merge
reading them has taken it, so a long run's memory stays flat.
"""

from __future__ import annotations

import heapq
import math
from typing import Callable

from a3c_jax.core import curves

SUMMED = tuple(f for f in curves.RowSums._fields[1:]
               if f not in curves.AVERAGED and not f.endswith("_updates"))
"""The fields of ``curves.RowSums`` a row sums over all its records (not the update count,
nor the averaged signals, which skip the records without one: ``row_sums``)."""


def row_sums(rs: list) -> curves.RowSums:
    """The ``curves.RowSums`` of a row's records: plain sums, and each averaged signal summed
    and counted over the records where it is not NaN."""
    sums = {f: sum(getattr(r, f) for r in rs) for f in SUMMED}
    for f in curves.AVERAGED:
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


class RecordLog:
    """One worker's records as a backend appends them (``append``, ``extend``), held only until
    every reader has taken them. ``len`` counts every record ever appended (update indices and
    restart offsets rely on it); a reader (``WorkerMerge``) registers once and takes what
    arrived since its last call with ``read``; iterating gives the records still held.
    Appending may happen on other threads; registering, reading and ``len`` happen on the
    thread that supervises the run."""

    def __init__(self):
        self._held: list = []
        self._dropped = 0
        self._cursors: dict[int, int] = {}

    def append(self, r) -> None:
        self._held.append(r)

    def extend(self, rs) -> None:
        self._held.extend(rs)

    def __iadd__(self, rs) -> "RecordLog":
        self.extend(rs)
        return self

    def __len__(self) -> int:
        return self._dropped + len(self._held)

    def __iter__(self):
        return iter(list(self._held))

    def register(self, reader: object) -> None:
        self._cursors[id(reader)] = self._dropped

    def read(self, reader: object) -> list:
        """The records appended since ``reader``'s last read; drops those all readers took."""
        n = len(self._held)   # appends after this wait for the next read
        start = self._cursors[id(reader)]
        got = self._held[start - self._dropped:n]
        self._cursors[id(reader)] = self._dropped + n
        low = min(self._cursors.values())
        if low > self._dropped:
            del self._held[:low - self._dropped]
            self._dropped = low
        return got


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
        for rs in per_worker:
            if isinstance(rs, RecordLog):
                rs.register(self)

    def _arrived(self, w: int) -> list:
        rs = self.per_worker[w]
        if isinstance(rs, RecordLog):
            return rs.read(self)
        n = len(rs)
        got, self.seen[w] = rs[self.seen[w]:n], n
        return got

    def take(self) -> list:
        new = []
        for w in range(len(self.per_worker)):
            for r in self._arrived(w):
                r = self.transform(r)
                new.append(r)
                self.taken += 1   # ties in ``order`` keep their arrival order
                heapq.heappush(self.pending, (*order(r), self.taken, r))
                self.last[w] = r.env_steps
        return new

    def ordered(self, final: bool = False) -> list:
        complete = math.inf if final else min(self.last, default=0)
        out = []
        while self.pending and self.pending[0][0] <= complete:
            out.append(heapq.heappop(self.pending)[-1])
        return out


class Tally:
    """Running figures over the records seen (kept instead of the records): how many, the
    latest wall time, the staleness's min / mean / max and the non-finite updates."""

    def __init__(self):
        self.count = self.nonfinite = self.staleness_sum = 0
        self.staleness_min, self.staleness_max = math.inf, -math.inf
        self.wall_time_s = -math.inf

    def add(self, rs: list) -> None:
        for r in rs:
            self.count += 1
            self.nonfinite += r.nonfinite
            self.staleness_sum += r.staleness
            self.staleness_min = min(self.staleness_min, r.staleness)
            self.staleness_max = max(self.staleness_max, r.staleness)
            self.wall_time_s = max(self.wall_time_s, r.wall_time_s)

    def staleness(self) -> dict:
        """As ``records.staleness_summary`` gives over the same records."""
        if not self.count:
            return {"min": float("nan"), "mean": float("nan"), "max": float("nan")}
        return {"min": int(self.staleness_min), "mean": self.staleness_sum / self.count,
                "max": int(self.staleness_max)}


class StreamBinner:
    """Bins the records of W workers (``per_worker``: lists or ``RecordLog``s the backends
    append to) while they run, over their complete prefix (``WorkerMerge``). ``poll()`` hands
    newly closed rows to ``on_rows`` and new records, in arrival order, to ``on_records``;
    ``finish()`` bins whatever is left once the workers have stopped. ``transform`` maps each
    record before anything sees it (a resumed run shifts its clock). It keeps the rows and a
    ``Tally`` of the records, not the records."""

    def __init__(self, per_worker: list[list], builder: RowBuilder,
                 on_rows: Callable[[list[dict]], None],
                 on_records: Callable[[list], None] | None = None,
                 transform: Callable | None = None):
        self.merge, self.builder = WorkerMerge(per_worker, transform), builder
        self.on_rows, self.on_records = on_rows, on_records
        self.rows: list[dict] = []
        self.tally = Tally()

    def _bin(self, final: bool) -> None:
        new = self.merge.take()
        self.tally.add(new)
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
