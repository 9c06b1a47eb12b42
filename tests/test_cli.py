"""experiments/train.py as a user runs it: bad flags fail fast naming the flag, a tiny run
writes everything, and progress shows in output that is not a terminal.

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

from a3c_jax.shell import files as runlog

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "experiments/train.py"
TIMEOUT_S = 300

# Each case costs a Python start-up with JAX imported; test_config.py covers every field.
BAD_FLAGS = {
    # flags: the flag the error must name (the user typed flags, not Config fields)
    ("--num-envs", "0"): "--num-envs",
    ("--lr", "nan"): "--lr",
    ("--env", "NoSuchEnv-v0"): "--env",
}
E2E_FLAGS = ("--algo", "a2c", "--total-steps", "2000", "--num-envs", "4", "--seeds", "0", "1",
             "--no-progress")
# Progress on, output to files (not a terminal): plain lines, then the summary line.
PROGRESS_FLAGS = ("--algo", "a2c", "--total-steps", "20000", "--num-envs", "4", "--seeds", "0",
                  "1", "--log-interval", "200", "--stop-return", "15", "--stop-window", "2000")


class CliRuns:
    """The module's subprocesses, started at once; ``result(name)`` waits for one of them."""

    def __init__(self, base: Path):
        self.base = base
        self.e2e_out = self.base / "run"
        self.procs = {"e2e": self._launch("e2e", *E2E_FLAGS, "--out", str(self.e2e_out))}
        self.progress_out = self.base / "progress"
        self.procs["progress"] = self._launch("progress", *PROGRESS_FLAGS, "--out",
                                              str(self.progress_out))
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
    flag = BAD_FLAGS[flags]
    assert rc == 2
    assert "invalid config" in stderr, stderr
    assert re.search(rf"{re.escape(flag)}(?![\w-])", stderr.split("invalid config", 1)[1]), stderr
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
        # Entropy of a 2-action policy summed (combine "sum") over the t_max = 5 steps of the
        # 4 envs' segments lies in (0, 20 ln 2].
        assert all(0 < float(r["entropy"]) <= 5 * 4 * math.log(2) + 1e-4 for r in seed_rows)
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


def test_progress_lines_when_output_is_not_a_terminal(runs):
    rc, stdout, stderr = runs.result("progress")
    assert rc == 0, stderr
    lines = stderr.splitlines()
    # compilation is shown as such, with no rate; then plain lines with rate and return
    compiling = [i for i, line in enumerate(lines) if "compiling" in line]
    rated = [i for i, line in enumerate(lines) if "env steps/s" in line]
    assert compiling and rated and compiling[0] < rated[0], stderr
    assert not any("steps/s" in lines[i] for i in compiling)
    assert any(re.search(r"compiled and initialised in [\d.]+ s$", line) for line in lines), stderr
    # the total counts both vmapped seeds
    assert all("/40k env steps" in lines[i] for i in rated), stderr
    assert any(re.search(r"return -?\d", lines[i]) for i in rated), stderr
    assert "\r" not in stderr and "█" not in stderr, "a terminal bar in a log file"
    # one summary line: the final return, the threshold's steps and seconds, the files
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith("done: a2c on CartPole-v1, 2/2 seeds"), summary
    assert re.search(r"final return \d", summary), summary
    assert re.search(r"15 reached by 2/2 at [\d.]+k? env steps, [\d.]+ s \(mean\)", summary), \
        summary
    assert f"files in {runs.progress_out}/" in summary


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
