"""The sync baseline sharded over 2 (forced) CPU devices equals the unsharded one."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from a3c_jax.config.schema import Config
    from a3c_jax.drivers.synchronous import make_train
    from a3c_jax.shell.runner import run

    assert jax.local_device_count() == 2, jax.devices()
    t = make_train(Config(total_steps=8_000, num_envs=8))
    s1, m1 = jax.jit(t.train)(jax.random.key(0))
    s2, m2 = t.train_sharded(jax.random.key(0))
    diff = max(float(np.max(np.abs(a - b))) for a, b in
               zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)))
    spec = str(s2.actor.env.obs.sharding.spec)
    r = run(Config(algo="a2c", total_steps=4_000, num_envs=8, seeds=(0, 1), progress=False),
            write=False)
    print(json.dumps({"diff": diff, "spec": spec,
                      "ret_equal": bool(np.allclose(np.array(m1.episode_return),
                                                    np.array(m2.episode_return),
                                                    equal_nan=True)),
                      "rows": len(r.rows)}))
""")


def test_sharded_sync_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert "envs" in out["spec"]            # the env batch really is split
    assert out["diff"] < 1e-4               # same parameters up to float tolerance
    assert out["ret_equal"]
    assert out["rows"] > 0                  # the runner trains sharded seeds too
