"""TensorBoard and Weights & Biases subscribers (a3c_jax.shell.loggers): what they write is read
back with TensorBoard's own reader and from W&B's offline run file."""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

import pytest

from a3c_jax.shell import loggers, files as runlog
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import InvalidInput, run

# tensorboardX writes, TensorBoard's own reader reads: both in the dev extra (make test)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def row(seed, steps, wall, ret=10.0, episodes=2, staleness=1.0):
    return {"algo": "a3c", "seed": seed, "env_steps": steps, "wall_time_s": wall,
            "episode_return": ret, "episodes": episodes, "policy_loss": 0.1 * seed,
            "value_loss": 0.2, "entropy": 0.5, "total_loss": 0.3, "staleness": staleness}


def scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def wandb_history(out: Path) -> tuple[list[dict], dict]:
    """(history rows, last summary) of the offline W&B run under ``out/wandb``: its run file
    is a LevelDB-style log of protobuf records after a 7-byte W&B header."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    data, block, pos = files[0].read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    records, partial = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:                     # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            pos += left - 7 - length
            continue
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            records.append(partial)
    def key(item) -> str:                # "a/b" keys may be stored as a nested key
        return item.key or "/".join(item.nested_key)

    history, summary = [], {}
    for raw in records:
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            history.append({key(i): float(i.value_json) for i in rec.history.item
                            if not key(i).startswith("_")})
        elif rec.WhichOneof("record_type") == "summary":
            summary.update({key(i): i.value_json for i in rec.summary.update})
    return history, summary


def test_tensorboard_event_files_per_seed(tmp_path):
    config = Config(algo="a3c", out=str(tmp_path), tensorboard=True, progress=False)
    (writer,) = loggers.subscribers(config)
    writer.rows([row(0, 1000, 0.5, ret=12.0), row(1, 1000, 0.25, ret=20.0)])
    writer.rows([row(0, 3000, 1.5, ret=30.0), row(1, 2000, 0.5, ret=float("nan"),
                                                  episodes=0)])
    writer.close()
    s0, s1 = scalars(tmp_path / "tensorboard" / "seed0"), scalars(tmp_path / "tensorboard" /
                                                                    "seed1")
    assert s0["charts/episode_return"] == [(1000, 12.0), (3000, 30.0)]
    assert s1["charts/episode_return"] == [(1000, 20.0)]           # NaN is left out
    assert s0["charts/env_steps_per_s"] == [(1000, 2000.0), (3000, 2000.0)]
    assert s1["charts/env_steps_per_s"] == [(1000, 4000.0), (2000, 4000.0)]
    assert [v for _, v in s1["losses/policy_loss"]] == pytest.approx([0.1, 0.1])
    for tag in ("losses/value_loss", "losses/entropy", "losses/total_loss", "async/staleness",
                "charts/episodes", "charts/wall_time_s"):
        assert [step for step, _ in s0[tag]] == [1000, 3000], tag


def test_a_missing_package_is_an_error_naming_the_option(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)     # import fails
    with pytest.raises(ValueError, match=r"^tensorboard: .*tensorboardX"):
        loggers.subscribers(Config(tensorboard=True))
    out = tmp_path / "run"
    with pytest.raises(InvalidInput, match="tensorboard"):
        run(Config(total_steps=200, num_envs=2, tensorboard=True, out=str(out)))
    assert not out.exists()                                    # refused before any work
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ValueError, match=r"^wandb: "):
        loggers.subscribers(Config(wandb="offline"))
    with pytest.raises(ValueError, match="wandb must be one of off, offline, online"):
        loggers.subscribers(Config(wandb="yes"))


def test_a_run_writes_tensorboard_and_offline_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    config = Config(total_steps=3000, num_envs=4, seeds=(0, 1), log_interval=500,
                    tensorboard=True, wandb="offline", wandb_project="tests", progress=False,
                    out=str(out))
    result = run(config)
    rows = runlog.read_csv(out / "metrics.csv")
    for seed in (0, 1):
        mine = [r for r in rows if int(r["seed"]) == seed]
        tb = scalars(out / "tensorboard" / f"seed{seed}")
        want = [(int(r["env_steps"]), float(r["episode_return"])) for r in mine
                if r["episode_return"]]
        assert [s for s, _ in tb["charts/episode_return"]] == [s for s, _ in want]
        assert [v for _, v in tb["charts/episode_return"]] == pytest.approx(
            [v for _, v in want], rel=1e-5)
        assert [s for s, _ in tb["losses/entropy"]] == [int(r["env_steps"]) for r in mine]
        assert "async/staleness" not in tb                  # a sync run has none
    history, summary = wandb_history(out)
    got = [(h["env_steps"], h["seed0/episode_return"]) for h in history
           if "seed0/episode_return" in h]
    want = [(float(r["env_steps"]), float(r["episode_return"])) for r in rows
            if int(r["seed"]) == 0 and r["episode_return"]]
    assert got == [(s, pytest.approx(v, rel=1e-5)) for s, v in want]
    assert len([h for h in history if "seed1/entropy" in h]) == len(
        [r for r in rows if int(r["seed"]) == 1])
    final = float(summary["seed0/final_return"])
    assert math.isfinite(final) and 1 <= final <= 500
    assert result.rows and (out / "config.json").exists()
