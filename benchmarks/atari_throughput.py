"""Atari throughput: agent steps/s and frames/s (4 emulator frames per step) on an ALE game.

Measured in one process, after compilation:

* env only: N games stepped with random actions inside one jitted ``lax.scan`` (the emulators
  run on up to ``min(N, cores)`` C++ threads through XLA's foreign calls), started before the
  timed call (a reset builds a fresh emulator batch, which takes seconds);
* A2C: the synchronous driver over N games with the paper's network (``sync.make_train``,
  one jitted scan of updates);
* A3C: W = 1, 2 asynchronous worker threads, one game each (the paper's E = 1), through the
  run shell (``runner.run``, threads backend; wall clock after compilation).

    python benchmarks/atari_throughput.py
    python benchmarks/atari_throughput.py --env ALE/Breakout-v5 --num-envs 8 16 --steps 8000

The figures depend on the machine and its load: print, never assert.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import tyro

from a3c_jax.core.atari import FRAME_SKIP, AtariEnv
from a3c_jax.config.schema import Config
from a3c_jax.shell.runner import run
from a3c_jax.drivers.synchronous import make_train


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "ALE/Pong-v5"
    """An ALE game id."""
    num_envs: tuple[int, ...] = (1, 16)
    """Games stepped together: env only and A2C."""
    workers: tuple[int, ...] = (1, 2)
    """A3C worker threads W (one game each)."""
    steps: int = 4000
    """Agent steps per measurement (all games together)."""


def _report(what: str, steps: int, seconds: float) -> None:
    rate = steps / seconds
    print(f"{what:<28} {rate:>9,.0f} agent steps/s {rate * FRAME_SKIP:>10,.0f} frames/s "
          f"({steps} steps in {seconds:.1f} s)", flush=True)


def env_only(name: str, n: int, steps: int) -> None:
    env = AtariEnv(name, n)
    t = max(1, steps // n)

    @jax.jit
    def play(state, key):
        def step(state, k):
            action = jax.random.randint(k, (n,), 0, env.num_actions)
            state, out = env.step(k, state, action)
            return state, out.reward.sum()
        state, rewards = jax.lax.scan(step, state, jax.random.split(key, t))
        return state, rewards.sum()

    # The games start outside the timed region: a reset builds a fresh emulator batch.
    state = jax.jit(env.reset)(jax.random.key(0))
    state, _ = jax.block_until_ready(play(state, jax.random.key(1)))
    start = time.perf_counter()
    jax.block_until_ready(play(state, jax.random.key(2)))
    _report(f"env only, N = {n}", t * n, time.perf_counter() - start)


def a2c(name: str, n: int, steps: int) -> None:
    config = Config(algo="a2c", env=name, num_envs=n, t_max=5, total_steps=10 ** 9)
    trainer = make_train(config)
    updates = max(1, steps // (5 * n))
    chunk = jax.jit(lambda s: trainer.run_chunk(s, updates))
    state = jax.jit(trainer.init)(jax.random.key(0))
    state, _ = chunk(state)
    jax.block_until_ready(state.params)
    start = time.perf_counter()
    state, _ = chunk(state)
    jax.block_until_ready(state.params)
    _report(f"A2C, N = {n}", updates * 5 * n, time.perf_counter() - start)


def a3c(name: str, workers: int, steps: int) -> None:
    config = Config(algo="a3c", env=name, workers=workers, envs_per_worker=1, t_max=5,
                    total_steps=steps, progress=False, log_seconds=0.0)
    rows = run(config, write=False).rows
    last = max(rows, key=lambda r: r["env_steps"])
    _report(f"A3C, W = {workers} (threads)", int(last["env_steps"]), last["wall_time_s"])


def main(args: Args) -> None:
    print(f"{args.env}: {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    for n in args.num_envs:
        env_only(args.env, n, args.steps)
    for n in args.num_envs:
        a2c(args.env, n, args.steps)
    for w in args.workers:
        a3c(args.env, w, args.steps)


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
