"""experiments/train.py as a user runs it: bad flags fail fast, a tiny run writes everything.

All CLI runs of this module start together (one fixture), so their start-ups overlap.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import serialization

from a3c_jax import runlog

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "experiments/train.py"
TIMEOUT_S = 300

# Each case costs a Python start-up with JAX imported; test_config.py covers every field.
BAD_FLAGS = {
    # flags: the field the error must name
    ("--num-envs", "0"): "num_envs",
    ("--lr", "nan"): "lr",
    ("--env", "NoSuchEnv-v0"): "env",
}
E2E_FLAGS = ("--algo", "a2c", "--total-steps", "2000", "--num-envs", "4", "--seeds", "0", "1",
             "--no-progress")


class CliRuns:
    """The module's subprocesses, started at once; ``result(name)`` waits for one of them."""

    def __init__(self, base: Path):
        self.base = base
        self.e2e_out = self.base / "run"
        self.procs = {"e2e": self._launch("e2e", *E2E_FLAGS, "--out", str(self.e2e_out))}
        for i, flags in enumerate(BAD_FLAGS):
            self.procs[flags] = self._launch(f"bad{i}", *flags, "--out", str(self.bad_out(flags)))

    def bad_out(self, flags) -> Path:
        return self.base / f"bad{list(BAD_FLAGS).index(flags)}"

    def _launch(self, tag: str, *args: str) -> tuple[subprocess.Popen, Path, Path]:
        # Output goes to files, not pipes: nobody reads a pipe until the test runs.
        stdout, stderr = self.base / f"{tag}.stdout", self.base / f"{tag}.stderr"
        with open(stdout, "w") as out, open(stderr, "w") as err:
            proc = subprocess.Popen([sys.executable, SCRIPT, *args], cwd=REPO_ROOT,
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        return proc, stdout, stderr

    def result(self, name) -> tuple[int, str, str]:
        proc, stdout, stderr = self.procs[name]
        rc = proc.wait(timeout=TIMEOUT_S)
        return rc, stdout.read_text(), stderr.read_text()

    def close(self) -> None:
        for proc, _, _ in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = CliRuns(tmp_path_factory.mktemp("cli"))
    yield runs
    runs.close()


@pytest.mark.parametrize("flags", list(BAD_FLAGS), ids=[" ".join(f) for f in BAD_FLAGS])
def test_bad_flags_exit_nonzero_naming_field(runs, flags):
    rc, stdout, stderr = runs.result(flags)
    field = BAD_FLAGS[flags]
    assert rc != 0
    assert "invalid config" in stderr, stderr
    assert re.search(rf"\b{field}\b", stderr.split("invalid config", 1)[1]), stderr
    # Rejected before anything ran: no run directory, nothing reported as done.
    assert not runs.bad_out(flags).exists()
    assert "done" not in stdout


def test_end_to_end_tiny_run(runs):
    rc, stdout, stderr = runs.result("e2e")
    out = runs.e2e_out
    assert rc == 0, stderr
    assert "done" in stdout

    for name in ("config.json", "metrics.csv", "returns.png", "params_seed0.msgpack",
                 "params_seed1.msgpack"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"

    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "a2c" and config["total_steps"] == 2000
    assert config["num_envs"] == 4 and config["seeds"] == [0, 1]
    assert config["progress"] is False
    assert runlog.read_config(out).seeds == (0, 1)

    rows = runlog.read_csv(out / "metrics.csv")
    columns = set(rows[0])
    for col in ("seed", "env_steps", "wall_time_s", "episode_return", "policy_loss",
                "value_loss", "entropy"):
        assert col in columns, col
    by_seed = {s: [r for r in rows if int(r["seed"]) == s] for s in (0, 1)}
    assert len(by_seed[0]) + len(by_seed[1]) == len(rows)
    for seed, seed_rows in by_seed.items():
        assert seed_rows, f"no rows for seed {seed}"
        steps = [int(r["env_steps"]) for r in seed_rows]
        assert steps == sorted(steps) and steps[-1] == 2000
        walls = [float(r["wall_time_s"]) for r in seed_rows]
        assert all(w >= 0 for w in walls) and walls == sorted(walls)
        for col in ("policy_loss", "value_loss", "entropy"):
            assert all(math.isfinite(float(r[col])) for r in seed_rows), col
        # Entropy of a 2-action policy summed over t_max = 5 steps lies in (0, 5 ln 2].
        assert all(0 < float(r["entropy"]) <= 5 * math.log(2) + 1e-4 for r in seed_rows)
        returns = [float(r["episode_return"]) for r in seed_rows if r["episode_return"]]
        assert returns, "no episode completed in 2000 CartPole steps"
        assert all(1.0 <= x <= 500.0 for x in returns)

    assert (out / "returns.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for seed in (0, 1):
        state = serialization.msgpack_restore((out / f"params_seed{seed}.msgpack").read_bytes())
        kernels = _kernel_shapes(state)
        # CartPole's 4 inputs, the default (64, 64) torso, a 2-action policy and a value head.
        assert {(4, 64), (64, 64), (64, 2), (64, 1)} <= kernels, kernels
    p0 = serialization.msgpack_restore((out / "params_seed0.msgpack").read_bytes())
    p1 = serialization.msgpack_restore((out / "params_seed1.msgpack").read_bytes())
    assert not np.array_equal(_flat(p0), _flat(p1)), "the two seeds trained identical params"


def _kernel_shapes(tree) -> set:
    if isinstance(tree, dict):
        found = {np.asarray(tree["kernel"]).shape} if "kernel" in tree else set()
        for v in tree.values():
            found |= _kernel_shapes(v)
        return found
    return set()


def _flat(tree) -> np.ndarray:
    if isinstance(tree, dict):
        return np.concatenate([_flat(tree[k]) for k in sorted(tree)])
    return np.asarray(tree, np.float64).ravel()
