"""The optimiser, in the paper's forms: one spec, one rule, three executors of it.

* RMSProp (paper): g <- alpha g + (1 - alpha) d^2;  theta <- theta - lr d / sqrt(g + eps),
  alpha = 0.99, eps inside the square root, no momentum, no centering. ``rmsprop`` shares g
  between asynchronous workers; ``rmsprop_local`` keeps one g per worker.
* Momentum SGD: m <- mu m + d;  theta <- theta - lr m  (``sgd``: optax.sgd's form), or the
  paper's (``sgd_paper``, supplementary optimisation section): m <- alpha m + (1 - alpha) d;
  theta <- theta - lr m, alpha = ``momentum``: the same direction, m smaller by 1 - alpha.
* Optional global-norm clipping of the gradient before either.
* The learning rate falls linearly to 0 at ``anneal_steps`` env steps (``lr_anneal``): a fixed
  horizon, ``lr_anneal_steps``, or the run's budget when that is 0 (``anneal_horizon``).

``OptSpec.from_config`` is the one place a resolved ``Config`` becomes optimiser settings, and
``rule(spec)`` the one place its constants become float32 (1 - alpha rounded from float64,
as optax rounds it). Every executor computes, element by element and in this order,

    buf   <- gain * step_term(d) + decay * buf       step_term = d^2 (RMSProp), d (momentum)
    theta <- theta + (-lr) * u,   u = rsqrt(buf + eps) * d (RMSProp), buf (momentum)

(optax's order of operations, so that the three agree to the last bit or nearly: see the
test that compares them).

* ``make_optax``: the optax chain of the synchronous driver (clipping, then the step, the
  schedule read at ``update * steps_per_update`` env steps);
* ``apply_in_place``: the asynchronous store's numba kernel on shared NumPy buffers
  (``a3c_jax.core.inplace``), the schedule read at the update's claim of the global counter
  T; clipping happens inside the worker's jitted step (``clip``, the chain's first piece);
* ``step``: the pure form on arrays, which the emulated backend applies.

A test holds the three equal on the same gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from a3c_jax.core import inplace

OptimizerName = Literal["rmsprop", "rmsprop_local", "sgd", "sgd_paper"]
"""The paper's three optimisers (``sgd_paper`` is momentum SGD as its supplement writes it)."""
NAMES = ("rmsprop", "rmsprop_local", "sgd", "sgd_paper")


@dataclasses.dataclass(frozen=True)
class OptSpec:
    """Optimiser settings (see the module docstring); ``lr`` may be a traced value."""

    lr: float
    name: OptimizerName = "rmsprop"
    decay: float = 0.99
    eps: float = 1e-5
    momentum: float = 0.9
    max_grad_norm: float = 0.0
    anneal_steps: int = 0   # > 0: lr falls linearly to 0 at env step anneal_steps

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"optimizer: unknown {self.name!r} ({', '.join(NAMES)})")

    @classmethod
    def from_config(cls, config) -> "OptSpec":
        """The optimiser of a resolved ``Config`` (``defaults.resolve``)."""
        if config.lr is None:
            raise ValueError("OptSpec.from_config needs a resolved config (lr is unset)")
        return cls(lr=config.lr, name=config.optimizer, decay=config.rms_decay,
                   eps=config.rms_eps, momentum=config.momentum,
                   max_grad_norm=config.max_grad_norm,
                   anneal_steps=anneal_horizon(config))

    @property
    def uses_shared_stats(self) -> bool:
        return self.name == "rmsprop"

    def lr_at(self, t):
        """The learning rate after ``t`` env steps: lr (1 - t / anneal_steps), 0 from
        anneal_steps on; constant without annealing. Works on Python numbers, NumPy and
        traced values alike (no branch on ``t``)."""
        if self.anneal_steps <= 0:
            return self.lr
        return self.lr * (1.0 - t / self.anneal_steps) * (t < self.anneal_steps)


def anneal_horizon(config) -> int:
    """The env step at which ``config``'s learning rate reaches 0: ``lr_anneal_steps``, or
    ``total_steps`` when that is 0 (the budget: the paper's schedule); 0 (constant) without
    ``lr_anneal``."""
    if not config.lr_anneal:
        return 0
    return config.lr_anneal_steps or config.total_steps


def clip(spec: OptSpec) -> optax.GradientTransformation:
    """Global-norm clipping at ``max_grad_norm`` (identity when 0); stateless."""
    if spec.max_grad_norm > 0:
        return optax.clip_by_global_norm(spec.max_grad_norm)
    return optax.identity()


def clip_grads(grads, spec: OptSpec):
    """``clip(spec)`` applied to ``grads`` where no optimiser state is at hand."""
    return clip(spec).update(grads, optax.EmptyState())[0]


def precondition(spec: OptSpec) -> optax.GradientTransformation:
    """The step's direction before the learning rate: RMSProp's scaling or a momentum."""
    if spec.name in ("rmsprop", "rmsprop_local"):
        return optax.scale_by_rms(spec.decay, spec.eps, eps_in_sqrt=True)
    if spec.name == "sgd_paper":
        return optax.ema(spec.momentum, debias=False)
    return optax.trace(decay=spec.momentum, nesterov=False)


def make_optax(spec: OptSpec, steps_per_update: int) -> optax.GradientTransformation:
    """The spec as an optax chain for a driver that makes ``steps_per_update`` env steps per
    update (the schedule is read at ``count * steps_per_update``)."""
    lr = lambda count: spec.lr_at(count * steps_per_update)  # noqa: E731
    if spec.anneal_steps <= 0:
        lr = spec.lr
    if spec.name in ("rmsprop", "rmsprop_local"):
        core = optax.rmsprop(lr, decay=spec.decay, eps=spec.eps, eps_in_sqrt=True)
    elif spec.name == "sgd_paper":
        core = optax.chain(precondition(spec), optax.scale_by_learning_rate(lr))
    else:
        core = optax.sgd(lr, momentum=spec.momentum)
    return optax.chain(clip(spec), core)


class Rule(NamedTuple):
    """The float32 constants of a spec's step (module docstring): the statistic's decay (alpha
    or mu), the new term's gain (1 - alpha for RMSProp and ``sgd_paper``, 1 for ``sgd``) and
    RMSProp's eps."""

    decay: np.float32
    gain: np.float32
    eps: np.float32
    rms: bool


def rule(spec: OptSpec) -> Rule:
    """The constants of ``spec``'s step. 1 - alpha is taken in float64, then rounded (0.01
    for alpha = 0.99, as optax computes it, not 0.0099999905 = 1 - float32(0.99))."""
    f32 = np.float32
    if spec.name in ("rmsprop", "rmsprop_local"):
        return Rule(f32(spec.decay), f32(1.0 - spec.decay), f32(spec.eps), True)
    gain = 1.0 - spec.momentum if spec.name == "sgd_paper" else 1.0
    return Rule(f32(spec.momentum), f32(gain), f32(0.0), False)


def step(spec: OptSpec, theta, buf, d, lr):
    """One optimiser step, pure: (theta, buf) after the rule (module docstring) on arrays
    of one shape (a flat vector, or a leaf of a parameter tree), gradient ``d`` already
    clipped, ``lr`` a number or a traced scalar. ``buf`` is g (RMSProp) or m (momentum)."""
    c = rule(spec)
    if c.rms:
        buf = c.gain * (d * d) + c.decay * buf
        u = jax.lax.rsqrt(buf + c.eps) * d
    else:
        buf = c.gain * d + c.decay * buf
        u = buf
    return theta + jnp.asarray(-1 * lr, theta.dtype) * u, buf


def apply_in_place(spec: OptSpec, theta: np.ndarray, d: np.ndarray, lr, buf: np.ndarray,
                   probe: np.ndarray | None = None, skip: tuple[int, int] = (0, 0)) -> None:
    """One optimiser step on ``theta`` in place, from gradient ``d`` (already clipped).

    ``buf`` is the RMSProp statistics g (shared or per worker) or the momentum buffer m,
    updated in place too. The arithmetic reads ``theta`` and ``buf`` as they are now, in one
    pass that does not hold the GIL (``a3c_jax.core.inplace``); ``probe`` (float64), if given, is
    advanced in the same pass; ``theta[skip[0]:skip[1]]`` is left untouched.
    """
    probe = _NO_PROBE if probe is None else probe
    stride = inplace.probe_stride(theta.shape[0], max(probe.shape[0], 1))
    d = np.ascontiguousarray(d, np.float32)
    c = rule(spec)
    neg_lr = np.float32(-1 * lr)
    if c.rms:
        inplace.rmsprop(theta, buf, d, neg_lr, c.decay, c.gain, c.eps, skip[0], skip[1],
                        probe, stride)
    else:
        inplace.sgd(theta, buf, d, neg_lr, c.decay, c.gain, skip[0], skip[1], probe, stride)


_NO_PROBE = np.zeros(0, np.float64)
