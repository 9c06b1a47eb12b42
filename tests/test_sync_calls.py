"""The synchronous run shell's compiled calls: several rows per call, planned on the host; the
rows, early stop and divergence stop are those of one row per call, bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config
from a3c_jax.core import losses
from a3c_jax.shell import calls, synchronous
from a3c_jax.shell.runner import run_sync

SMALL = Config(algo="a2c", env="CartPole-v1", num_envs=2, total_steps=2_000, seeds=(0,),
               hidden=(8,), log_interval=20, log_seconds=0.0, progress=False, out="")


def test_plan_call_takes_whole_rows_on_the_grid():
    # rows of 4 updates from update 6 (2 left in the open row), 20 in all
    assert calls.plan_call(6, 20, 4, budget=11, partial=False) == [2, 4, 4]
    assert calls.plan_call(6, 20, 4, budget=100, partial=False) == [2, 4, 4, 4]  # to total
    assert calls.plan_call(18, 20, 4, budget=100, partial=False) == [2]
    # no whole row fits: one anyway, or a cut one when the run also logs by time
    assert calls.plan_call(0, 20, 4, budget=1, partial=False) == [4]
    assert calls.plan_call(0, 20, 4, budget=3, partial=True) == [3]
    assert calls.plan_call(0, 20, 4, budget=0, partial=True) == [1]
    # the call ends at the first row reaching the next evaluation's update
    assert calls.plan_call(0, 20, 4, budget=100, partial=False, eval_at=9) == [4, 4, 4]
    assert calls.plan_call(8, 20, 4, budget=100, partial=False, eval_at=8) == [4]
    assert len(calls.plan_call(0, 10**6, 1, budget=10**6, partial=False)) == calls.MAX_ROWS


def _run(config, one_row_per_call: bool, monkeypatch, loss_fn=None):
    """The rows (without wall time), result and plans of a run, with calls of one row each
    or sized as usual."""
    plans = []
    real = calls.padded

    def spy(counts):
        plans.append(list(counts))
        return real(counts)

    with monkeypatch.context() as m:
        m.setattr(calls, "padded", spy)
        if one_row_per_call:
            m.setattr(synchronous, "CALL_S", 0.0)
        result = run_sync(resolve(config), loss_fn)
    rows = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in result.rows]
    return rows, result, plans[1:]   # the first plan is the compile's


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))


def test_rows_are_the_same_however_many_a_call_makes(monkeypatch):
    config = SMALL.replace(seeds=(0, 1), vmap_seeds=True)
    one, r1, p1 = _run(config, True, monkeypatch)
    many, rm, pm = _run(config, False, monkeypatch)
    assert len(one) == 2 * 100 and len(p1) == 100 and all(len(p) == 1 for p in p1)
    assert len(pm) < 10 and rm.extras["calls"] == len(pm)
    assert str(one) == str(many)   # NaN cells compare by their text
    assert _same(r1.params, rm.params)


def test_early_stop_mid_call_ends_at_its_row(monkeypatch):
    config = SMALL.replace(stop_return=15.0, stop_window=100)
    one, r1, _ = _run(config, True, monkeypatch)
    many, rm, pm = _run(config, False, monkeypatch)
    assert 1 < len(one) < 100 and str(one) == str(many)
    assert _same(r1.params, rm.params)
    # the stopping call ran past the row and was made again up to it
    assert pm[-1] == pm[-2][:len(pm[-1])] and len(pm[-1]) < len(pm[-2])


def nan_loss(params, apply_fn, traj, cfg):
    loss, m = losses.actor_critic_segment_loss(params, apply_fn, traj, cfg)
    return loss * jnp.nan, m


@pytest.mark.parametrize("log_interval", [20, 30])
def test_divergence_mid_call_stops_at_its_row(monkeypatch, log_interval):
    config = SMALL.replace(max_nonfinite=3, log_interval=log_interval)
    one, r1, _ = _run(config, True, monkeypatch, nan_loss)
    many, rm, pm = _run(config, False, monkeypatch, nan_loss)
    assert str(one) == str(many) and rm.extras["diverged"] == r1.extras["diverged"]
    # rows of 2 (3) updates: the 2nd (1st) row has 3 in a row
    steps = 40 if log_interval == 20 else 30
    assert one[-1]["env_steps"] == steps and f"env step {steps}" in rm.extras["diverged"]
    assert rm.extras["nonfinite"] == r1.extras["nonfinite"] == {0: steps // 10}
