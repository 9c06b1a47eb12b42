"""In-place optimiser steps on flat float32 buffers, compiled with numba (``nogil``).

The asynchronous store applies every update with one of these kernels: one pass over the
parameters that reads the shared values as they are at write time and writes them back,
element by element, without holding Python's GIL — so two workers' writes run in parallel
on two cores, and their element-level interleavings are those of Hogwild! (an element's
read-modify-write may overwrite another worker's, never a whole update).

Every kernel also advances the lost-update probe in the same pass: probe element j is
incremented right after parameter ``j * stride`` is written, so the probe experiences the
same interleavings as the parameters it sits beside (see ``shared.SharedStore``). Elements in
[skip_start, skip_stop) (observation statistics, merged elsewhere) are left untouched.

The arithmetic is the rule of ``a3c_jax.core.optim`` (its constants from ``optim.rule``), in
float32 and in the rule's order of operations (scalars must be passed as ``np.float32``):
  rmsprop:  g <- gain d^2 + a g;   theta <- theta + neg_lr ((1 / sqrt(g + eps)) d)
  sgd:      m <- gain d + mu m;    theta <- theta + neg_lr m
with gain = 1 - a (RMSProp), 1 (``sgd``) or 1 - mu (``sgd_paper``) and neg_lr = -lr.

Subnormal statistics are flushed to zero, as XLA:CPU flushes them in the synchronous
optimiser: a term (1 - a) d^2 below float32's smallest normal number (|d| < 1.08e-18 at
a = 0.99) counts as 0, and so does a statistic g or m that decays below it. Without the
flush, the statistics of parameters whose gradients are tiny (ReLU units of a convolutional
network that rarely fire) decay into the subnormal range, where every read and write takes a
slow path on x86: the kernel on the 678k parameters of the Atari network took 98-147 ms
instead of 7 ms, and an A3C run on Pong fell from 380 to 160 env steps/s after its first
minute.
"""

from __future__ import annotations

import numba
import numpy as np

TINY = np.float32(np.finfo(np.float32).tiny)   # the smallest normal float32


@numba.njit(nogil=True, cache=True, fastmath=False)
def rmsprop(theta, g, d, neg_lr, decay, one_minus, eps, skip_start, skip_stop, probe,
            stride):
    # |d| below this: (1 - a) d^2 is subnormal (infinite when a = 1: the term is always 0)
    floor = np.float32(np.sqrt(TINY / one_minus)) if one_minus > 0 else np.float32(np.inf)
    n = theta.shape[0]
    k = probe.shape[0]
    for i in range(n):
        if not skip_start <= i < skip_stop:
            di = d[i]
            # select first, then square: a select after the product would still compute the
            # subnormal square (compilers evaluate both arms of a branchless select)
            dq = di if abs(di) >= floor else np.float32(0.0)
            gi = one_minus * (dq * dq) + decay * g[i]
            if gi < TINY:
                gi = np.float32(0.0)
            g[i] = gi
            theta[i] = theta[i] + neg_lr * ((np.float32(1.0) / np.sqrt(gi + eps)) * di)
        if i % stride == 0 and i // stride < k:
            probe[i // stride] += 1.0
    for j in range((n + stride - 1) // stride, k):   # probe longer than the parameters
        probe[j] += 1.0


@numba.njit(nogil=True, cache=True, fastmath=False)
def sgd(theta, m, d, neg_lr, momentum, gain, skip_start, skip_stop, probe, stride):
    n = theta.shape[0]
    k = probe.shape[0]
    for i in range(n):
        if not skip_start <= i < skip_stop:
            mi = gain * d[i] + momentum * m[i]
            if abs(mi) < TINY:
                mi = np.float32(0.0)
            m[i] = mi
            theta[i] = theta[i] + neg_lr * mi
        if i % stride == 0 and i // stride < k:
            probe[i // stride] += 1.0
    for j in range((n + stride - 1) // stride, k):
        probe[j] += 1.0


def probe_stride(num_params: int, probe_size: int) -> int:
    return max(1, -(-num_params // probe_size))


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel, outside any timed region."""
    theta, buf, d = (np.zeros(4, np.float32) for _ in range(3))
    probe = np.zeros(2, np.float64)
    f = np.float32(0.5)
    rmsprop(theta, buf, d, f, f, f, f, 0, 0, probe, 2)
    sgd(theta, buf, d, f, f, f, 0, 0, probe, 2)
