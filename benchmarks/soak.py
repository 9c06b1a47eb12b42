"""A long asynchronous run, watched from outside: does anything grow?

For each backend, starts ``a3c-train --algo a3c`` as a child process with a budget it will not
reach, and every ``--every-s`` seconds samples the whole process tree (the run and every process
it started): resident memory (RSS, summed over the tree), open file descriptors, threads,
processes, and the run's shared-memory segments (``/dev/shm/a3cjax_<pid>_*``, the process
backend's store). After ``--minutes`` it sends Ctrl-C (SIGINT) and checks that the run exits,
with status 130 (interrupted, curves and checkpoint written), that no process of the tree
survives it and that no segment is left behind.

    python benchmarks/soak.py                                   # 20 min each: threads, processes
    python benchmarks/soak.py --minutes 2 --every-s 10 --warmup-min 0.5 --out runs/soak_short

Growth is measured from the first sample after ``--warmup-min`` (compilation, allocator and
page-cache warm-up) to the last one. Goals: RSS grows at most 5 %, open files and segments stay
constant. Writes ``soak.csv`` (every sample), ``soak.md`` (one row per backend) and
``soak.png`` (RSS and open files against time) under ``--out``. Figures depend on the machine:
the script prints them and says PASS or FAIL against the goals; no test asserts on them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import tyro

from a3c_jax.analysis import tables

SHM_DIR = Path("/dev/shm")
SEGMENT_PREFIX = "a3cjax_"       # the process backend's names: a3cjax_<owner pid>_<token>_<buf>
RSS_GOAL = 0.05                  # at most 5 % growth after the warm-up
COLUMNS = ("backend", "t_s", "rss_mb", "fds", "threads", "processes", "segments")


@dataclasses.dataclass(frozen=True)
class Args:
    backends: tuple[str, ...] = ("threads", "processes")
    """Backends to soak, one after the other."""
    minutes: float = 20.0
    """Length of each run."""
    every_s: float = 60.0
    """Seconds between samples."""
    warmup_min: float = 2.0
    """Growth is measured from the first sample after this many minutes."""
    workers: int = 2
    env: str = "CartPole-v1"
    out: str = "runs/soak"
    """Folder for soak.csv, soak.md, soak.png and the runs themselves."""


def segments(pid: int) -> int:
    """Shared-memory segments owned by process ``pid``."""
    if not SHM_DIR.is_dir():
        return 0
    return sum(1 for p in SHM_DIR.iterdir() if p.name.startswith(f"{SEGMENT_PREFIX}{pid}_"))


def tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def sample(root: psutil.Process) -> dict:
    """One sample of the tree under ``root`` (processes that vanish mid-sample are skipped)."""
    rss = fds = threads = alive = 0
    for p in tree(root):
        try:
            with p.oneshot():
                rss += p.memory_info().rss
                fds += p.num_fds()
                threads += p.num_threads()
            alive += 1
        except psutil.Error:
            continue
    return {"rss_mb": rss / 2**20, "fds": fds, "threads": threads, "processes": alive,
            "segments": segments(root.pid)}


def growth(samples: pd.DataFrame, warmup_s: float) -> dict:
    """One backend's figures: the values at the first sample after ``warmup_s`` and at the
    last, RSS growth between them (a fraction), and PASS when RSS grows at most ``RSS_GOAL``
    and open files, segments and processes are the same at both ends."""
    after = samples[samples.t_s >= warmup_s]
    if len(after) < 2:
        raise ValueError(f"fewer than two samples after the {warmup_s:.0f} s warm-up: "
                         "run longer or sample more often")
    first, last = after.iloc[0], after.iloc[-1]
    rss_growth = (last.rss_mb - first.rss_mb) / first.rss_mb
    flat = all(last[k] == first[k] for k in ("fds", "segments", "processes"))
    return {"from_s": float(first.t_s), "to_s": float(last.t_s),
            "rss_mb_from": float(first.rss_mb), "rss_mb_to": float(last.rss_mb),
            "rss_growth_pct": 100.0 * rss_growth,
            "rss_max_mb": float(after.rss_mb.max()),
            "fds": f"{int(first.fds)} -> {int(last.fds)}",
            "segments": f"{int(first.segments)} -> {int(last.segments)}",
            "processes": f"{int(first.processes)} -> {int(last.processes)}",
            "verdict": "PASS" if rss_growth <= RSS_GOAL and flat else "FAIL"}


def soak(backend: str, a: Args, out: Path) -> tuple[pd.DataFrame, dict]:
    """Run one backend for ``a.minutes``, sampling; then Ctrl-C and check what is left."""
    run_dir = out / f"run_{backend}"
    cmd = [sys.executable, "-c", "from a3c_jax.commands.train import main; raise SystemExit(main())",
           "--algo", "a3c", "--backend", backend, "--workers", str(a.workers), "--env", a.env,
           "--total-steps", str(10**12), "--out", str(run_dir), "--overwrite", "--no-progress"]
    log = open(out / f"run_{backend}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    rows, seen = [], set()
    t0 = time.monotonic()
    try:
        while (t := time.monotonic() - t0) < 60.0 * a.minutes:
            if proc.poll() is not None:
                raise RuntimeError(f"{backend}: the run exited early (rc {proc.returncode}); "
                                   f"see {log.name}")
            seen.update(tree(root))
            rows.append({"backend": backend, "t_s": round(t, 1), **sample(root)})
            print(f"{backend:9s} {rows[-1]}", flush=True)
            time.sleep(max(0.0, a.every_s - (time.monotonic() - t0 - t)))
        seen.update(tree(root))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed after 120 s"
        log.close()
    time.sleep(1.0)   # the reaper and the workers' own watch of their parent
    left = [p.pid for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    samples = pd.DataFrame(rows, columns=COLUMNS)
    figures = {"backend": backend, **growth(samples, 60.0 * a.warmup_min),
               "exit": rc, "processes_left": len(left), "segments_left": segments(proc.pid)}
    if rc != 130 or left or figures["segments_left"]:   # 130: stopped by Ctrl-C, all written
        figures["verdict"] = "FAIL"
    return samples, figures


def plot(samples: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rss, ax_fd) = plt.subplots(1, 2, figsize=(9, 3.2))
    for backend, g in samples.groupby("backend"):
        ax_rss.plot(g.t_s / 60, g.rss_mb, marker=".", label=backend)
        ax_fd.plot(g.t_s / 60, g.fds, marker=".", label=backend)
    ax_rss.set(xlabel="minutes", ylabel="RSS of the run's processes (MiB)", ylim=(0, None))
    ax_fd.set(xlabel="minutes", ylabel="open file descriptors", ylim=(0, None))
    ax_rss.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    a = tyro.cli(Args, args=argv, description=__doc__)
    if a.minutes <= 0 or a.every_s <= 0 or a.warmup_min < 0 or a.workers < 1:
        print("error: --minutes, --every-s and --workers must be positive", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"soak: {a.minutes:g} min per backend, a sample every {a.every_s:g} s, growth after "
          f"{a.warmup_min:g} min; {os.cpu_count()} logical cores, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    all_samples, table = [], []
    for backend in a.backends:
        samples, figures = soak(backend, a, out)
        all_samples.append(samples)
        table.append(figures)
    samples = pd.concat(all_samples, ignore_index=True)
    table = pd.DataFrame(table)
    samples.to_csv(out / "soak.csv.tmp", index=False)
    os.replace(out / "soak.csv.tmp", out / "soak.csv")
    md = tables.to_markdown(table.round(1))
    (out / "soak.md.tmp").write_text(md + "\n")
    os.replace(out / "soak.md.tmp", out / "soak.md")
    plot(samples, out / "soak.png")
    print(md)
    return 0 if (table.verdict == "PASS").all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
