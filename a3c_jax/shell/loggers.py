"""Where a run's logged rows go besides metrics.csv: TensorBoard, Weights & Biases, the display.

Each is a subscriber of the run's ``rowsink.RowSink``, like ``progress.ProgressDisplay``: built
from the config, it receives ``rows(rows)`` (new ``metrics.csv`` rows) as the drivers log them
and ``close()`` when the run ends; ``subscribers(config)`` builds the ones a config asks for.

* ``TensorBoardWriter`` (``--tensorboard``): one event file directory per seed,
  ``OUT/tensorboard/seed{S}`` (so TensorBoard overlays the seeds), scalars against env steps:
  ``charts/episode_return``, ``charts/episodes``, ``charts/env_steps_per_s``,
  ``charts/wall_time_s``, ``losses/{policy_loss,value_loss,total_loss,entropy}``,
  ``signals/{grad_norm,explained_variance,sigma}`` (where the method has them), for
  asynchronous runs ``async/staleness``, and at rows with a greedy evaluation
  (``eval_every``) ``eval/return``; the config as text. Uses tensorboardX (a light
  writer; no TensorFlow): ``pip install 'a3c_jax[tensorboard]'``; ``tensorboard --logdir OUT``.
* ``WandbLogger`` (``--wandb offline|online``): one W&B run per run directory, files under
  ``OUT/wandb``; the same scalars as ``seed{S}/...`` keys against ``env_steps``
  (``seed{S}/eval/return`` for the greedy evaluations), and the final return per seed in the
  run summary. Offline runs need no account (``wandb sync`` uploads
  them later). ``pip install 'a3c_jax[wandb]'``.

A missing package is a ``ValueError`` naming the option, raised by ``subscribers`` before
anything compiles. Event files are streamed as the run goes (TensorBoard reads a file that is
still being written), so they are not written atomically like the run directory's files.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

from a3c_jax.config.schema import Config
from a3c_jax.core import curves
from a3c_jax.shell import progress

WANDB_MODES = ("off", "offline", "online")
LOSSES = ("policy_loss", "value_loss", "total_loss", "entropy")
SIGNALS = curves.SIGNALS   # the collapse signals, as ``signals/<name>`` (NaN: left out)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class RateTracker:
    """Env steps/s of each seed between consecutive rows (wall-clock from the rows)."""

    def __init__(self):
        self.last: dict[int, tuple[float, float]] = {}

    def __call__(self, row: dict) -> float:
        seed, steps, wall = int(row["seed"]), _num(row["env_steps"]), _num(row["wall_time_s"])
        prev_steps, prev_wall = self.last.get(seed, (0.0, 0.0))
        self.last[seed] = (steps, wall)
        return (steps - prev_steps) / (wall - prev_wall) if wall > prev_wall else float("nan")


def scalars(row: dict, rate: float, is_async: bool) -> dict[str, float]:
    """The scalars one metrics.csv row gives, by TensorBoard tag; NaNs left out."""
    out = {"charts/episodes": _num(row.get("episodes")), "charts/env_steps_per_s": rate,
           "charts/wall_time_s": _num(row.get("wall_time_s")),
           "charts/episode_return": _num(row.get("episode_return"))}
    out.update({f"losses/{k}": _num(row.get(k)) for k in LOSSES})
    out.update({f"signals/{k}": _num(row.get(k)) for k in SIGNALS})
    if is_async:
        out["async/staleness"] = _num(row.get("staleness"))
    out["eval/return"] = _num(row.get("eval_return"))   # blank (NaN) without an evaluation
    return {k: v for k, v in out.items() if not math.isnan(v)}


def _config_markdown(config: Config) -> str:
    return "| field | value |\n|---|---|\n" + "\n".join(
        f"| {k} | {v} |" for k, v in config.to_dict().items())


def _optional(module: str, option: str, what: str):
    """Import ``module`` for ``option`` (an extra of the package of the same name), or a
    ValueError naming the option and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{option}: {what} needs {module} "
                         f"(pip install 'a3c_jax[{option}]')") from None


class TensorBoardWriter:
    """Event files per seed under ``OUT/tensorboard``; see the module docstring."""

    def __init__(self, config: Config):
        self._writer_cls = _optional("tensorboardX", "tensorboard",
                                     "writing event files").SummaryWriter
        self.config, self.rate = config, RateTracker()
        self.logdir = Path(config.out) / "tensorboard"
        self.writers: dict = {}

    def writer(self, seed: int):
        if seed not in self.writers:
            w = self._writer_cls(logdir=str(self.logdir / f"seed{seed}"), flush_secs=10)
            w.add_text("config", _config_markdown(self.config), 0)
            self.writers[seed] = w
        return self.writers[seed]

    def rows(self, rows: list[dict]) -> None:
        for row in rows:
            w, step = self.writer(int(row["seed"])), int(_num(row["env_steps"]))
            for tag, value in scalars(row, self.rate(row), self.config.is_async).items():
                w.add_scalar(tag, value, step)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers = {}


class WandbLogger:
    """One Weights & Biases run per run directory; see the module docstring."""

    def __init__(self, config: Config):
        self.wandb = _optional("wandb", "wandb", "logging to Weights & Biases")
        self.config, self.rate = config, RateTracker()
        self.seed_rows: dict[int, list[dict]] = {}
        self.run = None

    def _start(self):
        """The W&B run, started with the first rows (nothing is written before training)."""
        c = self.config
        out = Path(c.out)
        out.mkdir(parents=True, exist_ok=True)
        self.run = self.wandb.init(
            project=c.wandb_project, dir=str(out), mode=c.wandb, name=out.name,
            config=c.to_dict(), reinit="finish_previous",
            settings=self.wandb.Settings(silent=True, console="off"))
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")

    def rows(self, rows: list[dict]) -> None:
        if rows and self.run is None:
            self._start()
        for row in rows:
            seed = int(row["seed"])
            self.seed_rows.setdefault(seed, []).append(row)
            values = scalars(row, self.rate(row), self.config.is_async)
            self.run.log({"env_steps": int(_num(row["env_steps"])),
                          **{f"seed{seed}/{_wandb_name(k)}": v for k, v in values.items()}})

    def close(self) -> None:
        if self.run is None:
            return
        for seed, rs in self.seed_rows.items():
            value = curves.final_return(*curves.row_arrays(rs))
            if not math.isnan(value):
                self.run.summary[f"seed{seed}/final_return"] = value
            value = curves.final_eval_return(*curves.eval_arrays(rs))
            if not math.isnan(value):
                self.run.summary[f"seed{seed}/eval/final_return"] = value
        self.run.finish()
        self.run = None


def _wandb_name(tag: str) -> str:
    """A TensorBoard tag's W&B name under ``seed{S}/``: its last part (``episode_return``),
    but ``eval/return`` whole (a bare ``return`` would not say which)."""
    return tag if tag.startswith("eval/") else tag.split("/")[-1]


def subscribers(config: Config) -> list:
    """The row subscribers ``config`` asks for: the progress display (``progress``),
    TensorBoard (``tensorboard``) and Weights & Biases (``wandb``). ValueError naming the
    option if one is set wrongly or its package is missing."""
    if not isinstance(config.tensorboard, bool):
        raise ValueError(f"tensorboard must be a bool, got {config.tensorboard!r}")
    if config.wandb not in WANDB_MODES:
        raise ValueError(f"wandb must be one of {', '.join(WANDB_MODES)}, got {config.wandb!r}")
    subs: list = [progress.ProgressDisplay(config)] if config.progress else []
    if config.tensorboard:
        subs.append(TensorBoardWriter(config))
    if config.wandb != "off":
        subs.append(WandbLogger(config))
    return subs
