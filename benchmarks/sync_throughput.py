"""Sync A2C throughput: the package's paths against a plain A2C written here, over N envs.

Three programs train A2C on CartPole-v1 (gymnax) with the same network (MLP torso 64-64 tanh
shared by a 2-way policy head and a value head), the same optimiser (RMSProp, decay 0.99,
eps 1e-5 inside the root, lr 5e-3), t_max = 5, gamma = 0.99, entropy 0.01, value 0.5:

* plain: one jitted ``lax.scan`` over updates, ``vmap`` over the N envs, no normalisation,
  constant lr (the PureJaxRL shape, written here from scratch);
* scan: the package's ``make_train(config).train`` (one jitted scan, the driver alone);
* shell: the run shell as ``a3c-train --algo a2c`` runs it (``runner.run_sync``: compiled
  calls of several log rows each, sized to last about ``shell.synchronous.CALL_S``, a host
  round trip per call; no files). Its cells add ``calls x seconds``: the compiled calls of
  the median run and their mean duration.

Each is compiled first and then timed (the shell reports its own compile time and counts
``wall_time_s`` from its end). Variant ``bare``: the package with obs/reward normalisation and
lr annealing off (the plain program's settings); ``defaults``: the package's own defaults.
Printed: env steps/s (median of ``repeats``) and the package / plain ratio per N.

    python benchmarks/sync_throughput.py --num-envs 1 16 256 --budgets 20000 200000

Figures depend on the machine: print, never assert.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax
import tyro
from flax import linen as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # benchmarks/machine.py
import machine  # noqa: E402

from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import Config
from a3c_jax.drivers.synchronous import make_train
from a3c_jax.shell.runner import run_sync

LR, GAMMA, ENT, VF, T_MAX = 5e-3, 0.99, 0.01, 0.5, 5


@dataclasses.dataclass(frozen=True)
class Args:
    num_envs: tuple[int, ...] = (1, 16, 256, 2048, 16384)
    """Numbers of lockstep environments N."""
    budgets: tuple[int, ...] = (100_000, 2_000_000)
    """Env steps per run (short, long); each run makes at least ``min_updates`` updates."""
    min_updates: int = 8
    """Fewest updates per run (a large N with a short budget)."""
    repeats: int = 3
    """Timed calls per point (median reported)."""
    variants: tuple[str, ...] = ("bare", "defaults")
    """Package settings: bare (normalisation and lr annealing off) and/or defaults."""
    paths: tuple[str, ...] = ("scan", "shell")
    """Package paths to time against plain."""


# --- the plain A2C -------------------------------------------------------------------------

class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        for h in (64, 64):
            x = jnp.tanh(nn.Dense(h)(x))
        return nn.Dense(2)(x), nn.Dense(1)(x)[..., 0]


def plain_train(num_envs: int, num_updates: int):
    """``train(key) -> final loss``: A2C over ``num_envs`` gymnax CartPoles, one scan."""
    import gymnax

    env, env_params = gymnax.make("CartPole-v1")
    net, tx = _Net(), optax.rmsprop(LR, decay=0.99, eps=1e-5)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def loss_fn(params, obs, act, ret):
        logits, v = net.apply(params, obs)          # [T, N, 2], [T, N]
        logp = jax.nn.log_softmax(logits)
        adv = ret - v
        pg = -(jnp.take_along_axis(logp, act[..., None], -1)[..., 0]
               * jax.lax.stop_gradient(adv)).mean()
        ent = -(jnp.exp(logp) * logp).sum(-1).mean()
        return pg + VF * (adv ** 2).mean() - ENT * ent

    def update(carry, _):
        params, opt, env_state, obs, key = carry

        def act(c, _):
            env_state, obs, key = c
            key, k_a, k_s = jax.random.split(key, 3)
            logits, _ = net.apply(params, obs)
            a = jax.random.categorical(k_a, logits)
            out = step(jax.random.split(k_s, num_envs), env_state, a, env_params)
            obs2, env_state, r = out[:3]
            # (terminated, truncated) in this gymnax, done in older ones; both end the return
            d = out[3] | out[4] if len(out) == 6 else out[3]
            return (env_state, obs2, key), (obs, a, r, d)

        (env_state, obs, key), (o, a, r, d) = jax.lax.scan(act, (env_state, obs, key), None,
                                                           T_MAX)
        _, boot = net.apply(params, obs)

        def back(g, x):
            r_t, d_t = x
            g = r_t + GAMMA * (1.0 - d_t) * g
            return g, g

        _, ret = jax.lax.scan(back, boot, (r, d.astype(jnp.float32)), reverse=True)
        loss, grads = jax.value_and_grad(loss_fn)(params, o, a, jax.lax.stop_gradient(ret))
        upd, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, upd), opt, env_state, obs, key), loss

    def train(key):
        k_net, k_env, key = jax.random.split(key, 3)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, num_envs), env_params)
        params = net.init(k_net, obs)
        carry = (params, tx.init(params), env_state, obs, key)
        carry, losses = jax.lax.scan(update, carry, None, num_updates)
        return losses[-1]

    return train


# --- timing ----------------------------------------------------------------------------------

def _timed_jit(fn, key, repeats: int = 1) -> float:
    """Median seconds of a call of ``jit(fn)(key)``, compiled once before."""
    compiled = jax.jit(fn).lower(key).compile()
    jax.block_until_ready(compiled(key))      # first call: buffers, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(key))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def config_for(variant: str, n: int, steps: int) -> Config:
    c = Config(algo="a2c", env="CartPole-v1", num_envs=n, total_steps=steps, seeds=(0,),
               lr=LR, progress=False, out="")
    if variant == "bare":
        c = c.replace(obs_norm=False, reward_norm=False, lr_anneal=False)
    return resolve(c)


def package_seconds(path: str, config: Config, repeats: int) -> tuple[float, str]:
    """Median seconds of a run of ``path``, and (shell) its calls: ``calls x mean seconds``."""
    if path == "scan":
        return _timed_jit(make_train(config).train, jax.random.key(0), repeats), ""
    runs = []
    for _ in range(repeats):
        got = run_sync(config)
        # compile excluded: wall_time_s starts after it (each run compiles anew)
        runs.append((max(r["wall_time_s"] for r in got.rows), got.extras))
    secs, extras = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    return secs, f" ({extras['calls']} x {extras['call_s'] / extras['calls']:.3f} s)"


def header() -> str:
    d = jax.devices()[0]
    return (f"# sync A2C throughput, device {d.platform} ({d.device_kind}), "
            f"jax {jax.__version__}, on {machine.describe()}")


def main(a: Args) -> None:
    print(header(), flush=True)
    cols = [f"{v} {p}" for v in a.variants for p in a.paths]
    print("| budget | N | updates | plain steps/s | "
          + " | ".join(f"{c} steps/s | {c} / plain" for c in cols) + " |")
    print("|---|---|---|---|" + "---|---|" * len(cols), flush=True)
    for budget in a.budgets:
        for n in a.num_envs:
            updates = max(budget // (T_MAX * n), a.min_updates)
            steps = updates * T_MAX * n
            plain = steps / _timed_jit(plain_train(n, updates), jax.random.key(0), a.repeats)
            cells = []
            for v in a.variants:
                for p in a.paths:
                    secs, per_call = package_seconds(p, config_for(v, n, steps), a.repeats)
                    r = steps / secs
                    cells.append(f"{r:,.0f}{per_call} | {r / plain:.2f}")
            print(f"| {budget:,} | {n} | {updates} | {plain:,.0f} | " + " | ".join(cells)
                  + " |", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args))
