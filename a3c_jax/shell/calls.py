"""The compiled calls of the synchronous run shell, and how many updates each one makes.

A call advances a group's state by several metrics rows at once: ``make_rows(trainer, size)``
is one compiled program for every plan, ``rows(state, counts, num) -> (state, RowOut)``
runs ``counts[r]`` updates for each row ``r < num`` (``counts`` an int32 array of static
length ``MAX_ROWS``, ``num`` traced) and returns each row's sums (``Totals``) with the env
steps and the non-finite streak at its end, stacked over rows: ``[MAX_ROWS, seeds]``.
The sums of a row start from zero inside the call, so a row made within one call is the same,
bit for bit, however many rows that call makes.

``plan_call`` sizes a call on the host: whole rows (to the next ``log_interval`` grid point)
while they fit in the updates the call may make, ending at the row that may reach the next
greedy evaluation (its parameters are those of the call's end); a partial row only when no
whole row fits and the run also logs by time.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from a3c_jax.core import curves

MAX_ROWS = 256
"""Most rows one compiled call makes (the static length of its outputs)."""


class Totals(NamedTuple):
    """Sums over the updates of one row (per seed under vmap): ``curves.RowSums`` without
    the staleness, as float32 arrays (each averaged signal summed and counted where not NaN,
    the moments of V summed)."""

    updates: jax.Array
    episodes: jax.Array
    return_sum: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    total_loss: jax.Array
    grad_norm: jax.Array = 0.0
    sigma: jax.Array = 0.0
    grad_norm_updates: jax.Array = 0.0
    sigma_updates: jax.Array = 0.0
    ev_count: jax.Array = 0.0
    ev_return: jax.Array = 0.0
    ev_return_sq: jax.Array = 0.0
    ev_error: jax.Array = 0.0
    ev_error_sq: jax.Array = 0.0


class RowOut(NamedTuple):
    """What a call returns per row (leading axis: rows; then seeds)."""

    totals: Totals
    env_steps: jax.Array     # int32 env steps at the row's end
    nonfinite: jax.Array     # int32 non-finite gradients in a row at the row's end


def add_signals(tot: Totals, m) -> Totals:
    """``tot`` with the signals of update metrics ``m`` added: the averaged ones where they
    are not NaN, the moments of V as they are."""
    new = {f: getattr(tot, f) + getattr(m, f) for f in curves.EV_MOMENTS}
    for f in curves.AVERAGED:
        x, has = getattr(m, f), ~jnp.isnan(getattr(m, f))
        new[f] = getattr(tot, f) + jnp.where(has, x, 0.0)
        new[f + "_updates"] = getattr(tot, f + "_updates") + has
    return tot._replace(**new)


def make_advance(trainer) -> Callable:
    """``advance(state, n) -> (state, Totals)``: ``n`` updates of ``trainer`` (jittable)."""

    def advance(state, n):
        zero = Totals(*(jnp.zeros((), jnp.float32) for _ in Totals._fields))

        def body(carry):
            s, tot, i = carry
            s, m = trainer.update(s)
            ep = jnp.asarray(m.episodes, jnp.float32)
            ret = jnp.where(ep > 0, m.episode_return, 0.0) * ep
            tot = tot._replace(updates=tot.updates + 1, episodes=tot.episodes + ep,
                               return_sum=tot.return_sum + ret,
                               policy_loss=tot.policy_loss + m.policy_loss,
                               value_loss=tot.value_loss + m.value_loss,
                               entropy=tot.entropy + m.entropy,
                               total_loss=tot.total_loss + m.total_loss)
            return s, add_signals(tot, m), i + 1

        s, tot, _ = jax.lax.while_loop(lambda c: c[2] < n, body, (state, zero, jnp.int32(0)))
        return s, tot

    return advance


def over_seeds(advance: Callable, size: int) -> Callable:
    """``advance`` on states with a leading seed axis of ``size``: vmapped, except that a
    group of one runs unbatched (a vmapped convolution costs about a third more on XLA:CPU)."""
    if size > 1:
        return jax.vmap(advance, in_axes=(0, None))

    def one(state, n):
        out = advance(jax.tree.map(lambda x: x[0], state), n)
        return jax.tree.map(lambda x: x[None], out)

    return one


def make_rows(trainer, size: int) -> Callable:
    """``rows(state, counts, num) -> (state, RowOut)`` for a group of ``size`` seeds: the
    rows ``r < num`` of ``counts`` one after the other (a ``while_loop``, so the unused
    ``MAX_ROWS - num`` entries cost nothing); rows at or past ``num`` are zero."""
    step = over_seeds(make_advance(trainer), size)

    def rows(state, counts, num):
        def blank(x):
            return jnp.zeros((MAX_ROWS,) + tuple(x.shape), x.dtype)

        _, tot0 = jax.eval_shape(step, state, jnp.int32(0))
        out = RowOut(jax.tree.map(blank, tot0), blank(jnp.asarray(state.env_steps)),
                     blank(jnp.asarray(state.nonfinite)))

        def body(carry):
            s, out, r = carry
            s, tot = step(s, counts[r])
            got = RowOut(tot, s.env_steps, s.nonfinite)
            out = jax.tree.map(lambda o, x: o.at[r].set(x), out, got)
            return s, out, r + 1

        s, out, _ = jax.lax.while_loop(lambda c: c[2] < num, body, (state, out, jnp.int32(0)))
        return s, out

    return rows


def plan_call(done: int, total: int, chunk: int, budget: int, partial: bool,
              eval_at: int | None = None) -> list[int]:
    """Updates per row of one call starting after update ``done`` of ``total``, rows ending
    on the grid of ``chunk`` updates (or at ``total``), at most ``MAX_ROWS`` rows:

    * whole rows while their updates add up to at most ``budget``; none fits: one row cut to
      ``budget`` updates if ``partial`` (a run that also logs by time), else one whole row;
    * no row after the first one to end at or past update ``eval_at`` (the next greedy
      evaluation may fall there: it needs the parameters of that row's end)."""
    counts: list[int] = []
    used = 0
    while done < total and len(counts) < MAX_ROWS:
        n = min(chunk - done % chunk, total - done)
        if used + n > budget:
            if not counts:
                counts.append(max(min(n, budget), 1) if partial else n)
            break
        counts.append(n)
        used += n
        done += n
        if eval_at is not None and done >= eval_at:
            break
    return counts


def padded(counts: list[int]) -> tuple[np.ndarray, np.int32]:
    """``counts`` as the call's (``[MAX_ROWS]`` int32 array, number of rows)."""
    out = np.zeros(MAX_ROWS, np.int32)
    out[:len(counts)] = counts
    return out, np.int32(len(counts))   # np: jnp scalars are ops, dispatched each call
