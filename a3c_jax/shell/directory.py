"""The run directory as the durable record of a run: checked before any work, kept current.

``prepare(config, loss_fn, write)`` checks everything about the run's input that does not
need a compiler, before anything compiles or any file is touched, and raises ``InvalidInput``
naming the option:

* ``out`` must be a directory this process can write (a path through a file, ``/proc/x`` and
  read-only places are refused); an existing run directory (one holding config.json,
  run.json, metrics.csv or a checkpoint) is refused unless ``overwrite`` or ``resume`` is set;
  a non-empty directory that holds no run is refused whatever the flags (it is someone's own
  folder); ``overwrite`` removes only what a run writes (``run_written``) and leaves every
  other file in place;
* ``resume`` needs a run directory whose config.json matches the config in every field that
  shapes training (only ``RESUMABLE`` fields may differ), a readable checkpoint and a
  ``total_steps`` no smaller than the env steps already taken;
* a custom ``loss_fn`` must be sendable to the workers of the process and Ray backends.

``RunDir`` then keeps the directory current while the run goes: ``start`` writes run.json
(status ``running``), config.json and, for a resumed run, the curves cut back to the
checkpoint; rows stream into metrics.csv and updates.csv through ``sink``
(``rowsink.CsvAppender``); ``checkpoint`` saves the training state (``a3c_jax.shell.checkpoints``)
and the seed's parameters; ``finish`` marks run.json completed, interrupted (with the signal)
or failed (with the error). See ``runinfo`` for what run.json holds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from a3c_jax.core import curves
from a3c_jax.shell import checkpoints, sink as rowsink, info as runinfo, files as runlog
from a3c_jax.config.checks import check_loss_fn
from a3c_jax.config.schema import Config

RUN_FILES = ("config.json", "run.json", "metrics.csv", checkpoints.FILENAME)
WRITTEN = RUN_FILES + ("updates.csv", "returns.png", "params_seed*.msgpack", "eval.json",
                       "tensorboard", "wandb", ".*.tmp", ".*.tmp.png", ".probe.*")
"""What a run writes in its directory (names and glob patterns; temporary files included):
the only entries ``overwrite`` removes."""
RESUMABLE = ("total_steps", "out", "resume", "overwrite", "progress", "log_interval",
             "log_seconds", "checkpoint_s", "stop_return", "stop_window", "ray_address",
             "tensorboard", "wandb", "wandb_project", "max_restarts")
"""Fields a resumed run may change; every other field must match the run's config.json."""


class InvalidInput(ValueError):
    """Bad input found before any work: nothing was compiled or written."""


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (any((path / f).exists() for f in RUN_FILES)
                              or any(path.glob("params_seed*.msgpack")))


def run_written(path: Path) -> list[Path]:
    """The entries of ``path`` a run wrote (``WRITTEN``); anything else there is not ours."""
    return sorted({p for pattern in WRITTEN for p in path.glob(pattern)})


def _check_out(config: Config) -> Path:
    out = Path(config.out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"out: {parent} is a file, not a directory")
    if config.resume:
        if not (out / "config.json").is_file():
            raise ValueError(f"resume: there is no run to continue in {out} (no config.json)")
    elif is_run_dir(out) and not config.overwrite:
        status = runinfo.read(out).get("status")
        raise ValueError(f"out: {out} already holds a run"
                         + (f" (status {status})" if status else "")
                         + "; use --overwrite to replace it or --resume to continue it")
    elif out.is_dir() and any(out.iterdir()) and not is_run_dir(out):
        flag = "overwrite" if config.overwrite else "out"
        raise ValueError(f"{flag}: {out} is not empty and holds no run; refusing to write a run "
                         "among other files (choose a new or empty directory)")
    return out


def _probe(out: Path, keep: bool = True) -> None:
    """Create ``out`` if needed and write a file there (then remove what was created, unless
    ``keep``); ValueError when it cannot be written."""
    missing = [p for p in [out, *out.parents] if not p.exists()]
    failure = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        failure = err
    if failure is not None or not keep:
        for p in missing:   # deepest first
            try:
                p.rmdir()
            except OSError:
                pass
    if failure is not None:
        raise ValueError(f"out: cannot write to {out}: {failure.strerror or failure}") from None


def _check_resume(config: Config, out: Path) -> dict[int, dict]:
    try:
        saved = runlog.read_config(out)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"resume: cannot read {out / 'config.json'}: {err}") from None
    from a3c_jax.config.defaults import resolve

    saved = resolve(saved)
    differ = [f for f in saved.to_dict() if f not in RESUMABLE
              and getattr(saved, f) != getattr(config, f)]
    if differ:
        what = "; ".join(f"{f} is {getattr(config, f)!r}, the run has {getattr(saved, f)!r}"
                         for f in differ[:4])
        raise ValueError(f"resume: a resumed run keeps its config ({what}); "
                         "only ``total_steps``, ``out`` and the logging and output options "
                         "may change")
    if config.backend == "emulated" and not config.is_sync:
        raise ValueError("resume: the emulated backend writes no checkpoint to resume from")
    entries = {s: e for s, e in checkpoints.load(out).items() if s in config.seeds}
    kinds = {e["kind"] for e in entries.values()}
    if kinds - {"sync" if config.is_sync else "async"}:
        raise ValueError(f"resume: the checkpoint in {out} was written by another driver")
    if config.is_sync and config.vmap_seeds and (
            set(entries) != set(config.seeds)
            or len({e["updates"] for e in entries.values()}) > 1):
        entries = {}   # vmapped seeds restart together unless they stopped together
    taken = max((e["env_steps"] for e in entries.values()), default=0)
    if config.total_steps < taken:
        raise ValueError(f"total_steps ({config.total_steps}) is below the {taken} env steps "
                         f"the run at {out} has already taken")
    return entries


def prepare(config: Config, loss_fn=None, write: bool = True, subscribers=()) -> "RunDir":
    """Check a resolved config's run-directory options (module docstring); the RunDir.
    ``InvalidInput`` on bad input."""
    try:
        return _prepare(config, loss_fn, write, subscribers)
    except InvalidInput:
        raise
    except ValueError as err:
        raise InvalidInput(str(err)) from None


def check(config: Config, loss_fn=None) -> None:
    """Every check ``prepare`` makes, leaving the file system as it was: a command that runs
    several configs calls it for all of them before the first one trains. InvalidInput."""
    from a3c_jax.config.defaults import resolve

    try:
        config = resolve(config)
        check_loss_fn(config, loss_fn)
        out = _check_out(config)
        if config.resume:
            _check_resume(config, out)
        _probe(out, keep=False)
    except InvalidInput:
        raise
    except ValueError as err:
        raise InvalidInput(str(err)) from None


def _prepare(config: Config, loss_fn, write: bool, subscribers) -> "RunDir":
    check_loss_fn(config, loss_fn)
    if not write:
        if config.resume:
            raise ValueError("resume: continuing a run needs its run directory (write=True)")
        return RunDir(config, None, {}, subscribers)
    out = _check_out(config)
    entries = _check_resume(config, out) if config.resume else {}
    _probe(out)
    if config.overwrite and is_run_dir(out):
        for child in run_written(out):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    return RunDir(config, out, entries, subscribers)


def already_complete(config: Config) -> bool:
    """Whether ``config`` resumes a run that completed its budget: run.json says completed, for
    at least ``config.total_steps`` env steps, so there is nothing left to train."""
    if not config.resume:
        return False
    info = runinfo.read(config.out)
    return (info.get("status") == "completed"
            and config.total_steps <= int(info.get("total_steps") or 0))


def resume_defaults(config: Config) -> Config:
    """The defaults a ``--resume`` command line is parsed against: the config of the run at
    ``config.out`` (unchanged ``config`` when there is none; ``prepare`` then says so)."""
    try:
        return resume_config(config.out)
    except (OSError, ValueError, TypeError):
        return config


def resume_config(out: str | os.PathLike, **changes) -> Config:
    """The config of the run at ``out`` with ``resume`` set and ``changes`` applied (e.g.
    ``total_steps``): what ``runner.run`` continues that run with."""
    return runlog.read_config(out).replace(resume=True, overwrite=False, out=str(out),
                                           **changes)


def _version(entry: dict) -> float:
    """The store version of an asynchronous checkpoint (updates written after a lock-free
    snapshot began are not in it); unbounded for a synchronous one."""
    store = entry.get("store")
    return int(store["counters"][1]) if store is not None else float("inf")


class RunDir:
    """A run's directory while it runs (module docstring); ``path`` None writes nothing."""

    def __init__(self, config: Config, path: Path | None, entries: dict, subscribers=()):
        self.config, self.path, self.entries = config, path, dict(entries)
        self.sink = rowsink.RowSink(subscribers, keep_updates=path is None)   # else on disk
        self.info: dict = {}
        self.last_checkpoint = time.monotonic()

    def entry(self, seed: int) -> dict | None:
        return self.entries.get(seed)

    def start(self, argv=None) -> None:
        if self.path is None:
            return
        self.info = runinfo.started(self.path, self.config, argv)
        runlog.write_config(self.path, self.config)
        if self.config.resume:
            self._cut_curves()
        self.sink.subscribe(rowsink.CsvAppender(self.path))

    def _cut_curves(self) -> None:
        """Keep each seed's rows up to its checkpoint (none without one)."""
        def kept(name: str, columns) -> list[dict]:
            path = self.path / name
            if not path.exists():
                return []
            rowsink.repair_csv(path)
            rows = [runinfo.typed_row(r, name) for r in runlog.read_csv(path)]
            rows = [r for r in rows if r["seed"] in self.entries
                    and r["env_steps"] <= self.entries[r["seed"]]["env_steps"]
                    and r.get("version_written", 0) <= _version(self.entries[r["seed"]])]
            runlog.write_csv(path, columns, rows)
            return rows

        self.sink.rows = kept("metrics.csv", curves.METRIC_COLUMNS)
        kept("updates.csv", curves.UPDATE_COLUMNS)   # cut on disk: the sink keeps none
        stale = self.path / "eval.json"   # evaluated parameters the resumed run replaces
        if stale.exists():
            stale.unlink()

    def checkpoint_due(self) -> bool:
        c = self.config.checkpoint_s
        return self.path is not None and c > 0 and time.monotonic() - self.last_checkpoint >= c

    def checkpoint(self, updates: dict[int, tuple[dict, object]]) -> None:
        """Save ``{seed: (entry, params)}`` (with the entries of the other seeds) and each
        seed's parameters; the curves are flushed first, so they reach the checkpoint. A seed
        whose parameters are not finite is left out: its last finite checkpoint stays."""
        updates = {s: u for s, u in updates.items()
                   if all(np.isfinite(x).all() for x in jax.tree.leaves(u[1]))}
        self.entries.update({s: e for s, (e, _) in updates.items()})
        self.last_checkpoint = time.monotonic()
        if self.path is None:
            return
        self.sink.flush()
        checkpoints.save(self.path, self.entries)
        for seed, (_, params) in updates.items():
            if params is not None:
                runlog.save_params(self.path, seed, params)

    def on_second(self, signum: int) -> None:
        """A second signal: mark run.json before the process exits at once (the curves are
        not flushed from the handler: it may have cut a write of theirs short)."""
        if self.path is not None and self.info:
            runinfo.finished(self.path, dict(self.info), "interrupted", signum=signum)

    def finish(self, status: str, error: BaseException | None = None,
               signum: int | None = None, **outcome) -> None:
        """Flush the curves and write the outcome to run.json. A curve that cannot be written
        makes the run failed; when run.json itself cannot be written, stderr says so. Raises
        the first write error (``files.WriteError``) after trying both."""
        failure = None
        try:
            self.sink.close()
        except OSError as err:
            failure, status, error = err, "failed", error or err
        said = (runinfo.finished_or_say(self.path, self.info, status, error=error,
                                        signum=signum, **outcome)   # even if curves failed
                if self.path is not None and self.info else None)
        if (failure or said) is not None:
            raise failure or said
