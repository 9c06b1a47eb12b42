"""The throughput cost of the LSTM: env steps/s with and without it, measured in one run.

For the synchronous A2C (one jitted scan of updates, N envs) and for one asynchronous A3C worker
(one jitted call per update, E envs), the feed-forward actor-critic against the same torso
followed by an LSTM (``--lstm-size`` cells; the paper uses 256), on the same environment.

    python benchmarks/lstm_throughput.py
    python benchmarks/lstm_throughput.py --env CartPole-masked-v1 --num-envs 16 256 --seconds 5

Figures are medians over --repeats timed runs after compilation; they depend on the machine:
print, never assert.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import jax
import numpy as np
import tyro

from a3c_jax.config.schema import Config
from a3c_jax.drivers.synchronous import make_train
from a3c_jax.drivers.asynchronous.worker import AsyncWorker


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "CartPole-masked-v1"
    """Environment."""
    num_envs: tuple[int, ...] = (16, 256)
    """Sync A2C: environment counts N to measure."""
    envs_per_worker: tuple[int, ...] = (1, 8)
    """A3C: environments per worker E to measure (one worker, its jitted step only)."""
    hidden: tuple[int, ...] = (64,)
    """MLP torso (the same for both networks)."""
    lstm_size: int = 256
    """LSTM cells after the torso."""
    t_max: int = 5
    """Segment length."""
    seconds: float = 2.0
    """Approximate seconds per timed run."""
    repeats: int = 3
    """Timed runs per setting; medians are reported."""


def _config(a: Args, recurrent: bool, **kw) -> Config:
    return Config(env=a.env, hidden=a.hidden, t_max=a.t_max, recurrent=recurrent,
                  lstm_size=a.lstm_size, progress=False, seeds=(0,), lr_anneal=False, **kw)


def a2c_rate(a: Args, n: int, recurrent: bool) -> float:
    tr = make_train(_config(a, recurrent, num_envs=n, total_steps=10 ** 9))
    state = jax.jit(tr.init)(jax.random.key(0))
    probe = 20
    chunk = jax.jit(lambda s, k: tr.run_chunk(s, k), static_argnums=1)
    state, _ = jax.block_until_ready(chunk(state, probe))           # compile + warm up
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(chunk(state, probe))
    per_update = (time.perf_counter() - t0) / probe
    k = max(int(a.seconds / max(per_update, 1e-6)), 1)
    state, _ = jax.block_until_ready(chunk(state, k))               # compile the timed length
    rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(chunk(state, k))
        rates.append(k * tr.config.steps_per_update / (time.perf_counter() - t0))
    return statistics.median(rates)


def a3c_worker_rate(a: Args, e: int, recurrent: bool) -> float:
    worker = AsyncWorker.from_config(_config(a, recurrent, algo="a3c", workers=1,
                                             envs_per_worker=e, total_steps=10 ** 9))
    worker.compile()
    step = worker._compiled        # what the worker loop calls
    actor, key = worker.init_actor(0, 0)
    flat = worker.init_flat_params(0)
    for _ in range(5):
        out, actor, key = step(flat, None, actor, key)
    np.asarray(out)
    rates = []
    for _ in range(a.repeats):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < a.seconds:
            out, actor, key = step(flat, None, actor, key)
            np.asarray(out)     # the host copy a worker makes
            n += 1
        rates.append(n * worker.config.steps_per_update / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(a: Args) -> None:
    print(f"{a.env}, torso {a.hidden}, LSTM {a.lstm_size} cells, t_max {a.t_max}; "
          f"{jax.devices()[0].platform}")
    print(f"{'driver':<22}{'feed-forward':>14}{'LSTM':>12}{'LSTM / FF':>11}")
    for n in a.num_envs:
        ff, rnn = a2c_rate(a, n, False), a2c_rate(a, n, True)
        print(f"{f'A2C N={n}':<22}{ff:>14,.0f}{rnn:>12,.0f}{rnn / ff:>11.2f}")
    for e in a.envs_per_worker:
        ff, rnn = a3c_worker_rate(a, e, False), a3c_worker_rate(a, e, True)
        print(f"{f'A3C 1 worker E={e}':<22}{ff:>14,.0f}{rnn:>12,.0f}{rnn / ff:>11.2f}")
    print("(env steps per second)")


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
