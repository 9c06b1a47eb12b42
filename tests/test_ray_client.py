"""The Ray backend's pipelined store client, with Ray's calls played in process: a fake actor
handle whose ``.remote`` calls run at once on a real ``ParameterServer`` and return the value as
the future, so the client's protocol is checked without starting Ray."""

from __future__ import annotations

import threading
import types

import numpy as np
import pytest

from a3c_jax.drivers.asynchronous.backends import ray_store as ray_client
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.drivers.asynchronous.backends.ray_store import ParameterServer
from a3c_jax.drivers.asynchronous.worker import AsyncWorker


class _Handle:
    """``server.method.remote(*args)`` -> the method's answer, counted per method."""

    def __init__(self, target):
        self.target, self.calls = target, {}

    def __getattr__(self, name):
        method = getattr(self.target, name)

        def remote(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return method(*args)
        return types.SimpleNamespace(remote=remote)


@pytest.fixture
def in_process_ray(monkeypatch):
    monkeypatch.setattr(ray_client, "_ray", lambda: types.SimpleNamespace(get=lambda f: f))


def _run(config: Config, budget: int):
    c = resolve(config.replace(total_steps=budget))
    worker = AsyncWorker(c)
    server = ParameterServer(worker.init_flat_params(0), c.to_dict(), worker.with_target)
    handle = _Handle(server)
    client = ray_client.StoreClient(handle, 0)
    records: list = []
    worker.loop(0, 0, client, lambda: 0.0, records)(threading.Event())
    return server, handle, records


def test_every_update_is_written_once_in_order_with_its_own_record(in_process_ray):
    c = Config(algo="a3c", backend="ray", workers=1, lr_anneal=False, progress=False)
    server, handle, records = _run(c, budget=200)
    n = len(records)
    assert n == 200 // c.steps_per_update and server.store.T == 200
    assert [r.update for r in records] == list(range(n))
    assert [r.version_written for r in records] == list(range(1, n + 1))
    # one worker, pipelined: each gradient is taken at parameters that lack only this
    # worker's own last write (the first has nothing to lack)
    assert [r.staleness for r in records] == [0] + [1] * (n - 1)
    assert [r.version_read for r in records] == [0] + list(range(0, n - 1))
    # one round trip per update: every write but the last rides with the next claim
    assert handle.calls["apply_and_claim"] == n - 1 and handle.calls["apply"] == 1
    # the first claim alone; the second, made while the first segment ran, had no write yet
    assert handle.calls["claim_and_read"] == 1 and handle.calls["claim_after"] == 1


def test_a_stop_mid_run_still_writes_the_last_gradient(in_process_ray):
    c = resolve(Config(algo="a3c", backend="ray", workers=1, lr_anneal=False,
                       progress=False, total_steps=10_000))
    worker = AsyncWorker(c)
    server = ParameterServer(worker.init_flat_params(0), c.to_dict(), worker.with_target)
    client = ray_client.StoreClient(_Handle(server), 0)
    stop, records = threading.Event(), []

    class StopAfter(list):
        def append(self, rec):
            super().append(rec)
            if len(self) == 3:
                stop.set()

    records = StopAfter()
    worker.loop(0, 0, client, lambda: 0.0, records)(stop)
    # the loop stopped with writes in flight: flush() wrote them, and every gradient computed
    # has its record and its version
    assert server.store.version == len(records) >= 3
    assert [r.version_written for r in records] == list(range(1, len(records) + 1))


def test_only_the_version_goes_back_unless_overwrite(in_process_ray):
    snap = types.SimpleNamespace(params=np.ones(3), version=7, probe=None)
    lean = ray_client.StoreClient(None, 0)
    lean.apply(np.zeros(3), snap, None, t=5)
    assert lean._grad[1].params is None and lean._grad[1].version == 7
    full = ray_client.StoreClient(None, 0, send_params=True)
    full.apply(np.zeros(3), snap, None, t=5)
    assert full._grad[1] is snap
