"""Per-method defaults: the values of ``Config``'s auto fields, and ``resolve``.

A field of ``Config`` whose default is ``None`` (``config.AUTO_FIELDS``) means "auto". It is
filled by ``resolve(config)`` from the row of ``AUTO_DEFAULTS`` for the method family and the
environment's action space. ``resolve`` is called once, at the edge (``runner.run``,
``sync.make_train``, the worker builders); everything below receives a resolved config and
checks it with ``require_resolved`` instead of resolving again.
"""

from __future__ import annotations

from typing import Any

from a3c_jax.config import AUTO_FIELDS, Config

# --- per-method defaults ------------------------------------------------------------------

_UNUSED = {"target_interval": 10_000, "eps_anneal_steps": 100_000}  # fields the method ignores

AUTO_DEFAULTS: dict[str, dict[str, Any]] = {
    # The paper's discrete setting (Atari): no normalisation of any kind, beta = 0.01; the
    # learning rate is ours (the paper samples one per run).
    "discrete": {"lr": 3e-3, "gamma": 0.99, "entropy_coef": 0.01, "obs_norm": False,
                 "reward_scale": 1.0, **_UNUSED},
    # Continuous control: beta = 1e-4 (the paper); the rest is what the Pendulum-v1 learning
    # test (tests/test_continuous.py) measured to work. Sync A2C, 16 envs x t_max 5, 6 seeds:
    # with the discrete values (gamma 0.99, lr 3e-3, no normalisation) 2-4 of 6 seeds stay
    # near -1400 (the linear mean drifts outside the action box, where every clipped sample
    # acts alike); gamma 0.95 with lr 3e-3 still leaves 1-2 stuck; lr 1e-3 with gamma 0.95,
    # normalised observations and rewards x 0.1 took 12 of 12 seeds past -400 in 280k-450k
    # steps.
    "continuous": {"lr": 1e-3, "gamma": 0.95, "entropy_coef": 1e-4, "obs_norm": True,
                   "reward_scale": 0.1, **_UNUSED},
    # Value-based methods, tuned on CartPole-v1 with W = 2, E = 1 (seeds 0-6): lr 1e-3 (SARSA
    # needs it: 3e-3 took 0.4-0.9M steps), target copies every 1k steps (2k-10k was slower),
    # and a short epsilon anneal of 25k steps per environment (50k-100k was slower: the
    # smoothed return of the behaviour policy waits for epsilon).
    "value": {"lr": 1e-3, "gamma": 0.99, "entropy_coef": 0.01, "obs_norm": False,
              "reward_scale": 1.0, "target_interval": 1_000, "eps_anneal_steps": 25_000},
}
"""Values of the auto fields per method family and action space (``resolve``)."""

assert set(AUTO_FIELDS) == set(AUTO_DEFAULTS["discrete"])


def defaults_key(config: Config, discrete: bool) -> str:
    """Which row of ``AUTO_DEFAULTS`` applies to ``config``."""
    if config.family == "value":
        return "value"
    return "discrete" if discrete else "continuous"


def resolve(config: Config, env: Any = None) -> Config:
    """``config`` with every auto field (``None``) set for its method and action space.

    ``env`` (an ``envs.Env``) is optional: without it the action space is looked up from
    ``config.env``. Fields given explicitly are kept; resolving twice changes nothing.
    """
    missing = [name for name in AUTO_FIELDS if getattr(config, name) is None]
    if not missing:
        return config
    if env is not None:
        discrete = env.discrete
    else:
        from a3c_jax import envs  # local: keeps config import light

        discrete = envs.is_discrete(config.env)
    table = AUTO_DEFAULTS[defaults_key(config, discrete)]
    return config.replace(**{name: table[name] for name in missing})


def require_resolved(config: Config, who: str) -> Config:
    """Raise unless ``config`` was resolved (``resolve``) before reaching ``who``."""
    if not config.resolved:
        missing = [n for n in AUTO_FIELDS if getattr(config, n) is None]
        raise ValueError(f"{who} needs a resolved config (config.resolve); unset: {missing}")
    return config


