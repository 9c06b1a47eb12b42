"""Why the conv torso is written as patches @ kernel: the cost of one gradient step of the
MinAtar actor-critic, alone and inside a ``lax.scan`` of steps, with ``flax.linen.Conv``
layers against ``networks.PatchConv`` (the same parameters, the same outputs).

On XLA:CPU the gradient of ``lax.conv`` inside a loop body is several times slower than the
same gradient outside one (jax-ml/jax#12868); sync A2C scans its updates, so it pays that
price on every update. The patch form runs at the same speed in and out of a loop.

    python benchmarks/conv_in_loop.py
    python benchmarks/conv_in_loop.py --batch 80 320 --channels 4 --repeats 5

Figures are medians over --repeats timed runs after compilation; they depend on the machine:
print, never assert.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import a3c_jax  # noqa: F401  (sets the XLA flags before JAX starts)
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import tyro

from a3c_jax.core import networks


@dataclasses.dataclass(frozen=True)
class Args:
    batch: tuple[int, ...] = (80,)
    """Frames per gradient step (A2C: N envs x t_max; 16 x 5 = 80 by default)."""
    channels: int = 4
    """Frame channels (Breakout-MinAtar has 4, Asterix-MinAtar 4, SpaceInvaders 6)."""
    num_actions: int = 3
    steps: int = 20
    """Steps per scan."""
    repeats: int = 5
    """Timed runs; the median is printed."""


class ConvActorCritic(nn.Module):
    """The package's conv torso (either conv form) with linear policy and value heads."""

    num_actions: int
    lax_conv: bool

    @nn.compact
    def __call__(self, x):
        z = networks.ConvTorso(lax_conv=self.lax_conv)(x)
        return nn.Dense(self.num_actions)(z), nn.Dense(1)(z)[..., 0]


def _median_ms(fn, arg, repeats: int, per: int) -> float:
    jax.block_until_ready(fn(arg))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(arg))
        times.append((time.perf_counter() - start) / per * 1e3)
    return statistics.median(times)


def measure(net: nn.Module, batch: int, args: Args) -> tuple[float, float]:
    """(ms per step alone, ms per step inside a scan) for one RMSProp step of ``net``."""
    x = jax.random.uniform(jax.random.key(1), (batch, 10, 10, args.channels))
    params = net.init(jax.random.key(0), x[:1])
    opt = optax.rmsprop(1e-4)

    def loss(p):
        logits, value = net.apply(p, x)
        return jnp.sum(jax.nn.log_softmax(logits)[:, 0]) + jnp.sum(value ** 2)

    def step(carry):
        p, s = carry
        updates, s = opt.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    state = (params, opt.init(params))
    alone = _median_ms(jax.jit(step), state, args.repeats, 1)
    scanned = jax.jit(lambda c: jax.lax.scan(lambda c, _: (step(c), None), c, None,
                                             length=args.steps)[0])
    return alone, _median_ms(scanned, state, args.repeats, args.steps)


def main(args: Args) -> None:
    print(f"devices: {jax.devices()}; one RMSProp step of the MinAtar conv actor-critic, "
          f"{args.channels} channels, median of {args.repeats}")
    print("| batch | torso | ms/step alone | ms/step in a scan | scan / alone |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        for name, lax_conv in [("nn.Conv", True), ("PatchConv", False)]:
            alone, scanned = measure(ConvActorCritic(args.num_actions, lax_conv), batch, args)
            print(f"| {batch} | {name} | {alone:.2f} | {scanned:.2f} | {scanned / alone:.1f}x |",
                  flush=True)


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
