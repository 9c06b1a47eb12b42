"""MinAtar through both actor-critic drivers and n-step Q: the conv torso trains end to end at
a tiny budget (the learning figures at 5M frames are in the README)."""

from __future__ import annotations

import chex
import numpy as np
import pytest

from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run

CASES = [
    dict(algo="a2c", env="Breakout-MinAtar", num_envs=4),
    dict(algo="a3c", env="Breakout-MinAtar", workers=2, envs_per_worker=2),
    dict(algo="nq", env="Asterix-MinAtar", workers=2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['algo']}-{c['env']}")
def test_minatar_runs_with_the_conv_torso(case):
    config = Config(total_steps=3_000, seeds=(0,), t_max=5, log_interval=500, progress=False,
                    **case)
    result = run(config, write=False)
    rows = result.rows
    assert rows, "no metrics rows"
    assert max(r["env_steps"] for r in rows) >= config.total_steps
    for key in ("policy_loss", "value_loss", "total_loss"):
        vals = np.array([r[key] for r in rows], np.float64)
        assert np.isfinite(vals[~np.isnan(vals)]).all(), key
    returns = np.array([r["episode_return"] for r in rows], np.float64)
    assert np.isfinite(returns).any(), "no episode finished in 3k frames"
    torso = result.params[0]["params"]
    torso = next(v for k, v in torso.items() if k.endswith("Torso_0"))
    channels = 4
    chex.assert_shape(torso["Conv_0"]["kernel"], (3, 3, channels, 16))
    chex.assert_shape(torso["Conv_1"]["kernel"], (3, 3, 16, 32))
    assert all(np.isfinite(np.asarray(x)).all() for x in
               (torso["Conv_0"]["kernel"], torso["Conv_1"]["kernel"]))
