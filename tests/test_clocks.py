"""Training time is training time: compilation never lands on a curve's wall clock."""

from __future__ import annotations

import numpy as np

from a3c_jax.shell import runner
from a3c_jax.config.schema import Config


def test_sync_partial_last_chunk_is_compiled_before_the_clock():
    """A budget whose last chunk is shorter than the others: that chunk's executable is
    compiled before the clock starts, so no wall-clock increment is far above the median."""
    # 10 envs x t_max 5 = 50 steps per update; rows every 1000 steps = 20 updates per chunk;
    # 21_050 steps = 421 updates = 21 chunks of 20 and a last chunk of 1.
    c = Config(algo="a2c", num_envs=10, total_steps=21_050, log_interval=1_000,
               seeds=(0, 1), vmap_seeds=False, progress=False, hidden=(16,))
    result = runner.run(c, write=False)
    assert result.extras["compile_s"] > 0
    for seed in c.seeds:
        rows = [r for r in result.rows if r["seed"] == seed]
        assert rows[-1]["env_steps"] == 21_050
        wall = np.array([r["wall_time_s"] for r in rows])
        steps = np.diff(np.concatenate([[0.0], wall]))
        assert np.all(steps >= 0)
        # the last chunk is 1/20 of the others: its increment must not carry a compile
        assert steps[-1] < 5 * np.median(steps[1:-1]) + 0.05, steps


def test_async_clock_starts_after_compilation():
    c = Config(algo="a3c", workers=2, total_steps=2_000, seeds=(0,), progress=False,
               hidden=(16,))
    result = runner.run(c, write=False)
    assert result.extras["compile_s"] > 0
    first = min(r["wall_time_s"] for r in result.rows)
    # compiling the worker's step takes far longer than its first few updates
    assert first < result.extras["compile_s"]
