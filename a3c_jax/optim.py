"""Optimisers from optax, in the paper's forms.

* RMSProp (paper): g <- alpha g + (1 - alpha) d^2;  theta <- theta - lr d / sqrt(g + eps),
  alpha = 0.99, eps inside the square root, no momentum, no centering.
* Momentum SGD: m <- mu m + d;  theta <- theta - lr m  (optax.sgd's form).
* Optional global-norm clipping before either; optional linear annealing of lr to 0.

The asynchronous store applies the same arithmetic in place on shared buffers
(``a3c_jax.shared``); a test checks the two agree.
"""

from __future__ import annotations

import optax


def learning_rate(config, num_updates: int):
    """A float, or a linear schedule to 0 over ``num_updates`` when ``lr_anneal``."""
    config = _resolved(config)
    if config.lr_anneal:
        return optax.linear_schedule(config.lr, 0.0, max(num_updates, 1))
    return config.lr


def _resolved(config):
    from a3c_jax.config import Config, resolve_defaults

    return resolve_defaults(config) if isinstance(config, Config) else config


def make_optimizer(config, num_updates: int) -> optax.GradientTransformation:
    config = _resolved(config)
    lr = learning_rate(config, num_updates)
    if config.optimizer in ("rmsprop", "rmsprop_local"):
        opt = optax.rmsprop(lr, decay=config.rms_decay, eps=config.rms_eps, eps_in_sqrt=True)
    elif config.optimizer == "sgd":
        opt = optax.sgd(lr, momentum=config.momentum)
    else:
        raise ValueError(f"optimizer: unknown {config.optimizer!r}")
    if config.max_grad_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)
    return opt
