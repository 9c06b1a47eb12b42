"""Process backend: each worker's thread pools sized to its share of the cores."""

from __future__ import annotations

import collections
import os

import pytest

from a3c_jax import _xla
from a3c_jax.config.schema import Config
from a3c_jax.drivers.asynchronous.supervisor import train_seed
from a3c_jax.drivers.asynchronous.worker import AsyncWorker

CFG = Config(algo="a3c", backend="processes", workers=2, total_steps=2_000, seeds=(0,),
             progress=False, lr_anneal=False)
CPUS = len(os.sched_getaffinity(0))


def test_cores_per_worker_splits_the_machine_and_the_user_wins():
    assert _xla.cores_per_worker(16, 16, {}) == 1
    assert _xla.cores_per_worker(4, 16, {}) == 4
    assert _xla.cores_per_worker(32, 16, {}) == 1
    assert _xla.cores_per_worker(16, 16, {_xla.WORKER_CORES_ENV: "3"}) == 3
    assert _xla.cores_per_worker(16, 16, {_xla.WORKER_CORES_ENV: "all"}) is None


def test_pool_env_sizes_every_pool_and_keeps_what_the_user_set():
    env = _xla.pool_env(1, {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert env["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2",
                                        "--xla_cpu_multi_thread_eigen=false"]
    assert all(env[v] == "1" for v in _xla.POOL_VARS) and env[_xla.CORES_ENV] == "1"
    env = _xla.pool_env(4, {"NPROC": "7", "A3C_JAX_KEEP_XLA_FLAGS": "1"})
    assert "NPROC" not in env and "XLA_FLAGS" not in env and env["OMP_NUM_THREADS"] == "4"
    assert _xla.pool_env(None, {}) == {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}


def test_worker_cpus_pins_only_when_asked_and_when_the_workers_fit():
    on = {_xla.PIN_ENV: "1"}
    assert _xla.worker_cpus(1, 1, [0, 1, 2, 3], {}) is None
    assert [_xla.worker_cpus(w, 2, [0, 1, 2, 3], on) for w in range(3)] == [{0, 1}, {2, 3},
                                                                            {0, 1}]
    assert _xla.worker_cpus(0, 8, [0, 1, 2, 3], on) is None
    assert _xla.worker_cpus(0, None, [0, 1], on) is None


def test_host_cores_reads_a_workers_share():
    assert _xla.host_cores({_xla.CORES_ENV: "3"}) == 3
    assert _xla.host_cores({}) == CPUS


def _inside(pid: int) -> dict:
    """What a running process was started with and runs: its pool variables, XLA flags,
    affinity mask and threads by name."""
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    env = dict(kv.decode().split("=", 1) for kv in raw if b"=" in kv)
    names = collections.Counter()
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            names[open(f"/proc/{pid}/task/{t}/comm").read().strip()] += 1
        except FileNotFoundError:   # a thread that just ended
            pass
    return dict(env=env, cpus=os.sched_getaffinity(pid), names=names,
                threads=sum(names.values()))


def _run(monkeypatch, **env) -> list[dict]:
    for var in (*_xla.POOL_VARS, _xla.WORKER_CORES_ENV, _xla.PIN_ENV, _xla.CORES_ENV):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    seen: list[dict] = []
    # called once every worker has compiled (its jitted step has run) and been released
    got = train_seed(AsyncWorker.from_config(CFG), 0,
                     on_start=lambda procs: seen.extend(_inside(p.pid) for p in procs))
    assert got.stopped is None and len(seen) == CFG.workers
    for var in (*_xla.POOL_VARS, _xla.CORES_ENV):
        assert var not in os.environ or var in env   # the parent's environment is restored
    return seen


def test_worker_processes_run_pools_of_their_share(monkeypatch):
    k = max(1, CPUS // CFG.workers)
    for got in _run(monkeypatch):
        assert all(got["env"][v] == str(k) for v in (*_xla.POOL_VARS, _xla.CORES_ENV))
        assert got["names"]["tf_XLAEigen"] == k          # XLA:CPU's intra-op pool
        if k == 1:
            assert "--xla_cpu_multi_thread_eigen=false" in got["env"]["XLA_FLAGS"].split()
        assert got["cpus"] == os.sched_getaffinity(0)    # not pinned unless asked


@pytest.mark.skipif(CPUS < 2, reason="needs two cores to give a worker two")
def test_the_users_core_count_and_pinning_are_respected(monkeypatch):
    seen = _run(monkeypatch, **{_xla.WORKER_CORES_ENV: "2", "OPENBLAS_NUM_THREADS": "1"})
    for got in seen:
        assert got["env"]["NPROC"] == "2" and got["env"]["OPENBLAS_NUM_THREADS"] == "1"
        assert got["names"]["tf_XLAEigen"] == 2
    cpus = sorted(os.sched_getaffinity(0))
    seen = _run(monkeypatch, **{_xla.PIN_ENV: "1"})
    assert [got["cpus"] for got in seen] == [{cpus[0]}, {cpus[1 % len(cpus)]}]


def test_ray_worker_actors_get_the_same_pool_sizing():
    from a3c_jax.drivers.asynchronous.backends.ray_actors import worker_runtime_env

    env = worker_runtime_env(1.0, {})["env_vars"]
    assert all(env[v] == "1" for v in (*_xla.POOL_VARS, _xla.CORES_ENV))
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"].split()
    assert worker_runtime_env(0.5, {})["env_vars"]["NPROC"] == "1"   # a share: one thread
    assert worker_runtime_env(4.0, {})["env_vars"]["NPROC"] == "4"
    assert worker_runtime_env(1.0, {_xla.WORKER_CORES_ENV: "3"})["env_vars"]["NPROC"] == "3"
    assert worker_runtime_env(1.0, {"NPROC": "2"})["env_vars"].get("NPROC") is None
    assert worker_runtime_env(1.0, {_xla.WORKER_CORES_ENV: "all"})["env_vars"] == {
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
