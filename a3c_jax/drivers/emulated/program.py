"""The emulated backend: W asynchronous workers, replayable, in one jitted program.

W virtual workers, each with its own E environments, run key and (value methods) epsilons —
the same keys, initial parameters and actor states as the thread backend for the same seed
(``algorithm.worker_keys``, ``algorithm.init_flat_params``) — write in a given order
(round-robin, or a real run's: ``staleness.order``). Update i's gradient is computed at the
parameters as they were tau_i updates earlier (version i - tau_i, read from a ring buffer of
the last K = tau_max + 1 versions), and the optimiser step is applied to the current
parameters (version i): the
shared store's semantics (``a3c_jax.drivers.asynchronous.store``), one write at a time, so without its
element-level races. As on the store,

* update i claims env steps (i spu, (i + 1) spu] of the global counter T (spu = t_max E); the
  learning rate is read at T before the claim (``optim.OptSpec.lr_at``); the run makes
  ceil(total_steps / spu) updates, as the workers do (a claim needs T < budget);
* each update's gradient is the worker's own step (``algorithm.flat_step``: unroll, loss,
  gradient clipped by ``optim.clip_grads``), and the optimiser step is the rule's pure form
  (``optim.step``, the arithmetic of the store's in-place kernel); its statistics are
  shared (``rmsprop``) or the worker's own (``rmsprop_local``, ``sgd``);
* observation statistics: the segment's own statistics are merged into the current ones;
* value methods: theta^- <- theta once per multiple of ``target_interval`` a claim crosses;
  an update reads the target as it stood when its read version was current (``target_ring``);
* epsilons anneal per environment with the worker's own env steps (``rollout.ActorState``).

The taus and the worker order are inputs (``a3c_jax.core.staleness`` draws them), so a run is a
pure function of (seed, taus, order): bit-reproducible, and ``vmap``-able over seeds and
staleness settings.

Blocks. Update i may start before update i - 1 is written when it reads an older version.
The scan runs ``block`` = B updates per step: their B gradients are computed together (one
``vmap``), then the B optimiser steps are applied in order. That is exact whenever every update
in a block reads a version written before the block started (tau_i >= i mod B) and the B
workers are distinct (B <= W); ``plan`` picks the largest such B for a set of schedules
(round-robin: B = W). Only float rounding can differ from B = 1 (a vmapped matrix product).
The last block is padded; padded updates are marked ``valid = False`` and change nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.flatten_util import ravel_pytree

from a3c_jax.algorithms import interface as algorithm
from a3c_jax.core import normalization, optim, rollout
from a3c_jax.config.schema import Resolved
from a3c_jax.drivers.asynchronous.worker import async_parts


@struct.dataclass
class EmuState:
    ring: Any                    # parameter pytree, leaves [K, ...]: version u at slot u % K
    target_ring: Any             # value methods: target as it stood at version u; else None
    opt_state: Any               # optimiser statistics: shared, or leaves [W, ...] per worker
    actors: rollout.ActorState   # leaves [W, ...]: each worker's environments and schedule
    keys: jax.Array              # [W] each worker's run key
    version: jax.Array           # int32: versions written (the current version)


class EmuOut(NamedTuple):
    """Per update (leaves [..., num_updates]): who wrote it, the tau it used, whether it is a
    real update (False on the last block's padding), its metrics, and whether its gradient
    was not finite (then nothing was applied)."""

    worker: jax.Array
    staleness: jax.Array
    valid: jax.Array
    metrics: algorithm.Metrics
    nonfinite: jax.Array


@dataclasses.dataclass(frozen=True)
class Plan:
    """Static sizes of an emulated run: ring size K, block size B, updates with padding."""

    ring_size: int
    block: int
    num_updates: int
    workers: int

    @property
    def padded_updates(self) -> int:
        return -(-self.num_updates // self.block) * self.block

    @property
    def num_blocks(self) -> int:
        return self.padded_updates // self.block

    def blocks(self, taus: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, ...]:
        """(taus, workers, valid) of one schedule as [num_blocks, block] arrays, padding
        included (padded updates: tau = their place in the block, workers round-robin)."""
        taus, order = np.asarray(taus, np.int32), np.asarray(order, np.int32)
        for name, a in (("taus", taus), ("workers", order)):
            if a.shape != (self.num_updates,):
                raise ValueError(f"staleness: expected {self.num_updates} {name}, got {a.shape}")
        idx = np.arange(self.padded_updates)
        pad = idx[self.num_updates:]
        full = np.concatenate([taus, (pad % self.block).astype(np.int32)])
        ws = np.concatenate([order, (pad % self.workers).astype(np.int32)])
        valid = idx < self.num_updates
        return tuple(a.reshape(-1, self.block) for a in (full, ws, valid))


class Emulator:
    """The jittable pieces of an emulated run for one resolved config (see the module
    docstring): ``init(seed, plan)``, ``run_chunk(state, taus, workers, valid)``, ``train``."""

    def __init__(self, config: Resolved, loss_fn: Callable | None = None):
        self.config, self.algo, self.spec = async_parts(config, loss_fn, "Emulator",
                                                        "emulated workers")
        config = self.config
        self.workers = config.workers
        self.spu = config.steps_per_update
        self.num_updates = -(-config.total_steps // self.spu)
        # the worker's own step on flat vectors (``algorithm.flat_step``), as a thread runs it
        template = self.algo.init_params(jax.random.key(0))
        flat, self._unravel = ravel_pytree(template)
        self.layout = algorithm.StepLayout(int(flat.shape[0]), algorithm.stats_slice(template))
        self._step = algorithm.flat_step(self.algo, self.spec, self._unravel, self.layout)
        self._unravel_stats = (ravel_pytree(normalization.get_stats(template))[1]
                               if self.layout.stats is not None else None)

    # --- static sizes ----------------------------------------------------------------------
    def plan(self, schedules: Sequence[np.ndarray], orders: Sequence[np.ndarray] | None = None,
             block: int | None = None) -> Plan:
        """The ring and block sizes that serve every schedule (taus) in ``schedules``, with
        its worker order in ``orders`` (default round-robin): one compiled program for all of
        them. ``block`` forces a block size (it must be exact)."""
        taus = np.stack([np.asarray(s, np.int64) for s in schedules])
        n, W = self.num_updates, self.workers
        idx = np.arange(n)
        ws = np.stack([np.asarray(o, np.int64) for o in orders]) if orders else \
            np.broadcast_to(idx % W, taus.shape)
        if taus.shape[1] != n or ws.shape != taus.shape:
            raise ValueError(f"staleness: expected {n} taus and workers per schedule, got "
                             f"{taus.shape[1]} and {ws.shape[1]}")
        if (taus < 0).any() or (taus > idx).any():
            raise ValueError("staleness: taus must satisfy 0 <= tau_i <= i")
        if (ws < 0).any() or (ws >= W).any():
            raise ValueError(f"staleness: workers must lie in [0, {W})")

        def exact_for(b):   # reads before the block, and B distinct workers in each block
            if not (taus >= idx % b).all():
                return False
            full = ws[:, :n - n % b].reshape(len(ws), -1, b)
            return b == 1 or (np.sort(full, -1)[..., 1:] != np.sort(full, -1)[..., :-1]).all()

        exact = [b for b in range(1, min(W, n) + 1) if exact_for(b)]
        if block is None:
            block = exact[-1]
        elif block not in exact:
            raise ValueError(f"block {block} is not exact for these schedules (exact: {exact})")
        return Plan(ring_size=int(taus.max()) + 1, block=block, num_updates=n, workers=W)

    # --- state ------------------------------------------------------------------------------
    def init(self, seed, plan: Plan) -> EmuState:
        """The state of ``seed`` (an int, traceable): the thread backend's initial parameters,
        worker keys, actors and epsilons for the same seed."""
        algo, W, K = self.algo, self.workers, plan.ring_size
        k_params, _ = jax.random.split(jax.random.key(seed))
        params = algo.init_params(k_params)
        pairs = [algorithm.worker_keys(seed, w) for w in range(W)]
        k_env = jnp.stack([p[0] for p in pairs])
        eps = None
        if algo.is_value:
            eps = algo.actor_epsilons(self.config, jax.random.key(seed),
                                      W * self.config.envs_per_worker).reshape(W, -1)
        actors = jax.vmap(algo.init_actor)(k_env, eps)
        ring = jax.tree.map(lambda p: jnp.broadcast_to(p, (K,) + p.shape), params)
        opt = jax.tree.map(jnp.zeros_like, params)   # RMSProp's g or the momentum m
        if not self.spec.uses_shared_stats:
            opt = jax.tree.map(lambda x: jnp.broadcast_to(x, (W,) + x.shape), opt)
        return EmuState(ring=ring, target_ring=ring if algo.with_target else None,
                        opt_state=opt, actors=actors, keys=jnp.stack([p[1] for p in pairs]),
                        version=jnp.zeros((), jnp.int32))

    def params(self, state: EmuState):
        """The current parameters of ``state`` (version ``state.version``)."""
        K = jax.tree.leaves(state.ring)[0].shape[0]
        return jax.tree.map(lambda r: r[state.version % K], state.ring)

    # --- one update's gradient, then the block -------------------------------------------
    def _grad(self, params, target, actor, key):
        """One update's (clipped gradient, actor, key, segment statistics, metrics): the
        worker's ``flat_step`` on the read version, its packed output unravelled."""
        flat_target = None if target is None else ravel_pytree(target)[0]
        out, actor, key = self._step(ravel_pytree(params)[0], flat_target, actor, key)
        grad, stats, m = self.layout.split(out)
        stats = None if self._unravel_stats is None else self._unravel_stats(stats)
        m = m._replace(episodes=m.episodes.astype(jnp.int32))
        return self._unravel(grad), actor, key, stats, m

    def _apply(self, K: int, carry, x):
        """One optimiser step on the current version (the store's ``apply``), in order."""
        ring, target_ring, opt, v = carry
        grads, stats, ok, w = x
        take = lambda tree, i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
        cur = take(ring, v % K)
        local = not self.spec.uses_shared_stats
        o = take(opt, w) if local else opt
        lr = self.spec.lr_at(v * self.spu)
        stepped = jax.tree.map(lambda p, b, d: optim.step(self.spec, p, b, d, lr), cur, o,
                               grads)
        new, o_new = (jax.tree.map(lambda _, pair: pair[i], cur, stepped) for i in (0, 1))
        # a non-finite gradient is never applied (as on the store): the version it would
        # have written holds the current parameters and statistics unchanged
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(d)) for d in jax.tree.leaves(grads)]))
        new, o_new = (jax.tree.map(lambda a, b: jnp.where(finite, a, b), x, y)
                      for x, y in ((new, cur), (o_new, o)))
        if stats is not None:
            new = normalization.set_stats(
                new, normalization.merge_stats(normalization.get_stats(new), stats))
        keep = lambda a, b: jax.tree.map(lambda p, q: jnp.where(ok, p, q), a, b)  # noqa: E731
        new, o_new = keep(new, cur), keep(o_new, o)
        put = lambda r, s, val: jax.tree.map(lambda a, b: a.at[s].set(b), r, val)  # noqa: E731
        nxt = (v + 1) % K
        ring = put(ring, nxt, keep(new, take(ring, nxt)))
        opt = put(opt, w, o_new) if local else o_new
        if target_ring is not None:
            interval = self.config.target_interval
            crossed = ((v + 2) * self.spu) // interval != ((v + 1) * self.spu) // interval
            tgt = keep(jax.tree.map(lambda a, b: jnp.where(crossed, a, b), new,
                                    take(target_ring, v % K)), take(target_ring, nxt))
            target_ring = put(target_ring, nxt, tgt)
        return (ring, target_ring, opt, v + ok.astype(jnp.int32)), ok & ~finite

    def _block(self, state: EmuState, xs):
        taus, w, valid = xs
        B = taus.shape[0]
        K = jax.tree.leaves(state.ring)[0].shape[0]
        i = state.version + jnp.arange(B, dtype=jnp.int32)
        slot = (i - taus) % K
        take = lambda tree, idx: jax.tree.map(lambda a: a[idx], tree)  # noqa: E731
        args = (take(state.ring, slot), take(state.target_ring, slot),
                take(state.actors, w), state.keys[w])
        if B == 1:
            out = jax.tree.map(lambda a: a[None], self._grad(*take(args, 0)))
        else:
            out = jax.vmap(self._grad)(*args)
        grads, actors_w, keys_w, stats, m = out
        actors = jax.tree.map(lambda a, b: a.at[w].set(b), state.actors, actors_w)
        carry = (state.ring, state.target_ring, state.opt_state, state.version)
        (ring, target_ring, opt, version), skipped = jax.lax.scan(
            lambda c, x: self._apply(K, c, x), carry, (grads, stats, valid, w))
        new = EmuState(ring=ring, target_ring=target_ring, opt_state=opt, actors=actors,
                       keys=state.keys.at[w].set(keys_w), version=version)
        return new, EmuOut(worker=w, staleness=taus, valid=valid, metrics=m, nonfinite=skipped)

    def run_chunk(self, state: EmuState, taus, workers, valid) -> tuple[EmuState, EmuOut]:
        """Blocks ``taus``, ``workers``, ``valid`` [num_blocks, B] in one scan; outputs are
        flat [num_blocks * B] per update."""
        state, out = jax.lax.scan(self._block, state, (taus, workers, valid))
        return state, jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)

    def train(self, seed, taus, workers, valid, plan: Plan) -> tuple[EmuState, EmuOut]:
        """The whole run of one seed for one schedule (``plan.blocks``); jit it, or vmap it
        over seeds and schedules (``plan`` is static)."""
        return self.run_chunk(self.init(seed, plan), taus, workers, valid)
