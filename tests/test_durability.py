"""experiments/train.py as schedulers and crashes treat it: SIGTERM, SIGINT, SIGKILL in every
phase, on every kind of run; no run is lost, no process orphaned, no segment left in
/dev/shm, and bad input is refused (status 2) before any work.

The process-backend cases run one after another (their timings are asserted) in one xdist
group; cold-cache runs make the workers' warm-up (importing JAX, compiling) long enough to
signal inside it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from a3c_jax.shell import checkpoints, files as runlog
from a3c_jax.drivers.asynchronous.backends.shared_memory import SHM_PREFIX

pytestmark = pytest.mark.xdist_group("durability")
REPO = Path(__file__).resolve().parents[1]
SMALL = ("--hidden", "8", "--no-progress")


class Train:
    """One ``experiments/train.py`` subprocess."""

    def __init__(self, tmp: Path, tag: str, *args: str, cold_cache: bool = False):
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        if cold_cache:
            env["JAX_COMPILATION_CACHE_DIR"] = str(tmp / f"cache_{tag}")
        self.out, self.err = tmp / f"{tag}.out", tmp / f"{tag}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "experiments/train.py", *args],
                                         cwd=REPO, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)

    def wait_until(self, condition, timeout: float = 240.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < end, f"timed out waiting\n{self.text()}"
            time.sleep(0.1)

    def workers(self) -> list[psutil.Process]:
        try:
            return [p for p in self.ps.children(recursive=True)
                    if "spawn_main" in " ".join(p.cmdline())]
        except psutil.Error:
            return []

    def descendants(self) -> list[psutil.Process]:
        return self.ps.children(recursive=True)

    def finish(self, timeout: float = 240.0) -> int:
        return self.proc.wait(timeout=timeout)

    def text(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()}"

    def segments(self) -> list[str]:
        return [n for n in os.listdir("/dev/shm") if n.startswith(f"{SHM_PREFIX}{self.proc.pid}_")]


def rows(run_dir: Path, name: str = "metrics.csv") -> list[dict]:
    path = run_dir / name
    return runlog.read_csv(path) if path.exists() else []


def alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def assert_no_orphans(procs: list[psutil.Process], within: float = 10.0) -> float:
    t0 = time.monotonic()
    while alive(procs) and time.monotonic() - t0 < within:
        time.sleep(0.1)
    assert not alive(procs), f"still running {within} s after: {alive(procs)}"
    return time.monotonic() - t0


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def stopped_within(train: Train, run_dir: Path, t0: float, code: int) -> float:
    """Seconds from ``t0`` until run.json says the run stopped (workers stopped, everything
    written); then the process must exit with ``code``. What is left after run.json is
    written is the interpreter's own exit (the JAX runtime's teardown: about 2.5 s for any
    a3c_jax process on the 2 shared cores at load 10, well under 1 s on an idle machine)."""
    while run_json(run_dir).get("status") == "running" and train.proc.poll() is None:
        time.sleep(0.05)
    took = time.monotonic() - t0
    assert train.finish(timeout=30) == code, train.text()
    return took


# --- bad input: status 2, a message naming the option, no traceback, nothing written --------

def _existing(tmp: Path) -> Path:
    d = tmp / "existing"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "eval.json").write_text("stale")
    return d


BAD = {
    "q1-on-continuous": (lambda t: ["--env", "Pendulum-v1", "--algo", "q1", "--out",
                                    str(t / "q1")], "--algo q1 needs a discrete action space"),
    "out-is-a-file": (lambda t: ["--out", str(t / "afile" / "run")], "--out: "),
    "out-unwritable": (lambda t: ["--out", "/proc/a3c_jax_x"], "--out: cannot write"),
    "existing-run": (lambda t: ["--out", str(_existing(t))], "--overwrite"),
    "resume-nothing": (lambda t: ["--resume", "--out", str(t / "nothing")], "--resume: "),
}


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.suffix not in (".out", ".err"))


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad command line, started at once (each costs a Python start-up with JAX)."""
    base = tmp_path_factory.mktemp("bad")
    started = {}
    for case, (make_args, _) in BAD.items():
        d = base / case
        d.mkdir()
        (d / "afile").write_text("x")
        args = make_args(d)
        started[case] = (d, _listing(d), Train(d, case, *args, *SMALL))
    yield started
    for _, _, train in started.values():
        if train.proc.poll() is None:
            train.proc.kill()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_before_any_work(case, bad_runs):
    d, before, train = bad_runs[case]
    assert train.finish() == 2, train.text()
    err = train.err.read_text()
    assert BAD[case][1] in err and "Traceback" not in err
    assert _listing(d) == before   # nothing created, nothing cleared


# --- SIGTERM and SIGKILL in training ---------------------------------------------------------

def test_sigterm_stops_a_threads_run_and_keeps_everything(tmp_path):
    out = tmp_path / "run"
    train = Train(tmp_path, "term", "--algo", "a3c", "--total-steps", "100000000", "--out",
                  str(out), *SMALL)
    train.wait_until(lambda: len(rows(out)) >= 2)   # the curve is on disk while it runs
    train.proc.send_signal(signal.SIGTERM)
    assert train.finish(timeout=30) == 143, train.text()
    info = run_json(out)
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM"
    assert len(rows(out)) >= 2 and rows(out, "updates.csv")
    assert (out / "params_seed0.msgpack").exists() and (out / "checkpoint.msgpack").exists()
    assert "interrupted" in train.out.read_text() and "Traceback" not in train.err.read_text()


@pytest.mark.slow
def test_sigkill_keeps_the_curve_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    train = Train(tmp_path, "kill", "--algo", "a2c", "--num-envs", "2", "--total-steps",
                  "100000000", "--log-seconds", "0.2", "--checkpoint-s", "0.5", "--out",
                  str(out), *SMALL)
    train.wait_until(lambda: len(rows(out)) >= 5 and (out / "checkpoint.msgpack").exists())
    time.sleep(0.5)
    train.proc.send_signal(signal.SIGKILL)
    train.finish()
    assert run_json(out)["status"] == "running"           # what a killed run leaves
    killed = rows(out)
    assert len(killed) >= 5                               # appended as it grew
    done = checkpoints.load(out)[0]["env_steps"]
    target = done + 2_000
    again = Train(tmp_path, "resume", "--out", str(out), "--resume", "--total-steps",
                  str(target), "--no-progress")
    assert again.finish() == 0, again.text()
    steps = [int(r["env_steps"]) for r in rows(out)]
    assert steps == sorted(set(steps)) and steps[-1] == target      # no gap, no duplicate
    assert [int(r["env_steps"]) for r in killed if int(r["env_steps"]) <= done] == [
        s for s in steps if s <= done]
    info = run_json(out)
    assert info["status"] == "completed" and info["total_steps"] == target
    assert [h["status"] for h in info["history"]] == ["running"]   # the killed invocation


# --- the process backend -------------------------------------------------------------------

def test_ctrl_c_in_warm_up_exits_within_5_s_and_cleans_up(tmp_path):
    out = tmp_path / "run"
    train = Train(tmp_path, "int", "--algo", "a3c", "--backend", "processes", "--total-steps",
                  "100000000", "--out", str(out), *SMALL, cold_cache=True)
    train.wait_until(lambda: len(train.workers()) == 2)
    time.sleep(1.0)
    procs = train.descendants()
    assert not rows(out), "the workers were to be still warming up"
    t0 = time.monotonic()
    train.proc.send_signal(signal.SIGINT)
    assert stopped_within(train, out, t0, 130) < 5.0
    assert_no_orphans(procs, within=2.0)
    assert train.segments() == []
    assert "returns.png" not in train.out.read_text()    # no curve, so no plot is claimed
    assert run_json(out)["status"] == "interrupted"


def test_kill_9_in_warm_up_leaves_no_orphan_and_no_segment(tmp_path):
    train = Train(tmp_path, "kill9w", "--algo", "a3c", "--backend", "processes",
                  "--total-steps", "100000000", "--out", str(tmp_path / "run"), *SMALL,
                  cold_cache=True)
    train.wait_until(lambda: len(train.workers()) == 2)
    time.sleep(1.0)
    procs = train.descendants()
    train.proc.send_signal(signal.SIGKILL)
    train.finish()
    assert_no_orphans(procs)
    assert train.segments() == []


@pytest.mark.slow
def test_kill_9_in_training_then_resume_then_sigterm(tmp_path):
    out = tmp_path / "run"
    train = Train(tmp_path, "kill9", "--algo", "a3c", "--backend", "processes",
                  "--total-steps", "100000000", "--checkpoint-s", "0.5", "--out", str(out),
                  *SMALL)
    train.wait_until(lambda: len(rows(out)) >= 2 and (out / "checkpoint.msgpack").exists())
    procs = train.descendants()
    assert len(train.workers()) == 2
    train.proc.send_signal(signal.SIGKILL)
    train.finish()
    assert_no_orphans(procs)
    assert train.segments() == []
    done = checkpoints.load(out)[0]["env_steps"]

    again = Train(tmp_path, "again", "--out", str(out), "--resume", "--no-progress")
    again.wait_until(lambda: len(again.workers()) == 2   # started: the old curve is cut
                     and any(int(r["env_steps"]) > done for r in rows(out)))
    procs = again.descendants()
    t0 = time.monotonic()
    again.proc.send_signal(signal.SIGTERM)           # as a scheduler stops a job
    assert stopped_within(again, out, t0, 143) < 5.0
    assert_no_orphans(procs, within=2.0)
    assert again.segments() == []
    info = run_json(out)
    assert info["status"] == "interrupted" and info["signal"] == "SIGTERM"
    assert [h["status"] for h in info["history"]] == ["running"]   # the killed invocation
    updates = rows(out, "updates.csv")
    versions = [int(r["version_written"]) for r in updates]
    assert len(versions) == len(set(versions))                       # no update twice
    resumed = [r for r in updates if int(r["env_steps"]) > done]
    assert {r["worker"] for r in resumed} == {"0", "1"}
    steps = [int(r["env_steps"]) for r in rows(out)]
    assert steps == sorted(set(steps))
