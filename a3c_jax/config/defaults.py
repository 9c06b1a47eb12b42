"""Per-method defaults: the values of ``Config``'s auto fields, and ``resolve``.

A field of ``Config`` whose default is ``None`` (``AUTO_FIELDS``) means "auto". It is filled by
``resolve(config)`` from the row of ``AUTO_DEFAULTS`` for the method family and the
environment's action space. ``resolve`` is called once, at the edge (``runner.run``,
``sync.make_train``, ``AsyncWorker.from_config``): it validates the config, reads what the
config names on disk (a staleness trace) before anything compiles, and returns a ``Resolved``;
everything below takes a ``Resolved`` and neither checks nor resolves again.
"""

from __future__ import annotations

from typing import Any

from a3c_jax.config.schema import AUTO_FIELDS, GROUPS, Config, Resolved

# --- per-method defaults ------------------------------------------------------------------

_UNUSED = {"target_interval": 10_000, "eps_anneal_steps": 100_000}  # fields the method ignores

AUTO_DEFAULTS: dict[str, dict[str, Any]] = {
    # Actor-critic, discrete actions. gamma 0.99, beta 0.01 and the shared torso are the
    # paper's (Atari); the rest is ours (the paper samples lr from LogUniform(1e-4, 1e-2) per
    # run). Rewards are divided by the running std of the discounted return: without it the
    # value loss of a shared torso swamps the policy when returns are large (A2C on CartPole
    # with rewards x 100 never reached its 47500 in 500k steps; x 0.01 reached 4.75 at 84k;
    # Acrobot never left -500), with it the three scales reach their thresholds at 41k-76k
    # steps and Acrobot ends near -89. The loss is the step-weighted mean (``combine``), so
    # the gradient's size does not grow with N t_max: with the paper's sum, RMSProp's eps
    # stops mattering and late in training, when the gradient is tiny, a rare large one
    # throws the policy off 500 (CartPole, 1M steps, 5 seeds: the smoothed return fell to
    # 256; with step-mean the lowest late value was 442). The learning rate depends on how
    # many env steps one update averages: A2C (N t_max = 80 steps per update) 5e-3; A3C
    # (t_max E = 5 steps, 16x the updates per env step) 1e-3 (3e-3 dipped to 215 late).
    "discrete": {"lr": 5e-3, "gamma": 0.99, "entropy_coef": 0.01, "obs_norm": False,
                 "reward_scale": 1.0, "reward_norm": True, "shared_torso": True,
                 **_UNUSED},
    "discrete_async": {"lr": 1e-3, "gamma": 0.99, "entropy_coef": 0.01, "obs_norm": False,
                       "reward_scale": 1.0, "reward_norm": True, "shared_torso": True,
                       **_UNUSED},
    # Continuous control: beta = 1e-4 (the paper); the rest is what the Pendulum-v1 learning
    # test (tests/test_continuous.py) measured to work. Sync A2C, 16 envs x t_max 5, 6 seeds:
    # with the discrete values (gamma 0.99, lr 3e-3, no normalisation) 2-4 of 6 seeds stay
    # near -1400 (the linear mean drifts outside the action box, where every clipped sample
    # acts alike); gamma 0.95 with lr 3e-3 still leaves 1-2 stuck; lr 1e-3 with gamma 0.95,
    # normalised observations and rewards x 0.1 took 12 of 12 seeds past -400 in 280k-450k
    # steps. Return-based reward normalisation replaces the fixed x 0.1, and with the
    # step-weighted mean the learning rate is 2e-3 (3 seeds: -400 at 228k-269k of 1M steps,
    # final -181, where the old defaults took 339k-442k and ended at -231; 285k-358k of 500k).
    # Observations are not normalised (they were until the Pendulum collapse, docs/results.md):
    # running statistics over every step seen keep moving as the policy concentrates its
    # states upright, so the same state reaches the network as a different input. After the
    # learning rate reaches 0 (500k steps), a frozen policy fell from -250 to -1300 on all 3
    # seeds of 10M steps with nothing changing but those statistics; without them the same
    # runs reach -250 at 250k and stay above -230 to 10M (final -165 to -169).
    "continuous": {"lr": 2e-3, "gamma": 0.95, "entropy_coef": 1e-4, "obs_norm": False,
                   "reward_scale": 1.0, "reward_norm": True, "shared_torso": True,
                   **_UNUSED},
    # A3C on continuous actions (Pendulum-v1, W = 2 threads, E = 1, 600k steps, seeds 0-2;
    # docs/results.md): with the sync row (lr 2e-3) no seed learned (sigma stayed near 0.6,
    # -840 best over 5M steps): one update averages 5 steps, not 80. lr 1e-4 never reached -250;
    # 2e-4 to 1e-3 all did (at 170k-350k), but the smoothed return later dipped below -400 on
    # 1-2 of 3 seeds (to -430...-910), with gamma 0.95, gradient clipping at 0.5 or t_max 20
    # alike. lr 3e-4 with gamma 0.9 (a shorter horizon: less variance in each 5-step return)
    # reached -250 at 190k-310k on 6 of 6 seeds (0-5), never fell below -380 after, and ended
    # at -165 to -224.
    "continuous_async": {"lr": 3e-4, "gamma": 0.9, "entropy_coef": 1e-4, "obs_norm": False,
                         "reward_scale": 1.0, "reward_norm": True, "shared_torso": True,
                         **_UNUSED},
    # Value-based methods, tuned on CartPole-v1 with W = 2, E = 1 (seeds 0-6): lr 1e-3 (SARSA
    # needs it: 3e-3 took 0.4-0.9M steps), target copies every 1k steps (2k-10k was slower),
    # and a short epsilon anneal of 25k steps per environment, i.e. 50k steps of T (100k-200k
    # was slower: the smoothed return of the behaviour policy waits for epsilon). The anneal
    # counts T, so it holds at any number of environments: counted per environment, N = 16
    # explored 8x longer (sync nq at N = 16 reached 400 at 427k-835k steps, 185k-515k with
    # the anneal over T).
    "value": {"lr": 1e-3, "gamma": 0.99, "entropy_coef": 0.01, "obs_norm": False,
              "reward_scale": 1.0, "reward_norm": False, "shared_torso": True,
              "target_interval": 1_000, "eps_anneal_steps": 50_000},
}
"""Values of the auto fields per method family and action space (``resolve``)."""

# Not per method: the learning rate anneals over ``Config.lr_anneal_steps`` = 500k env steps
# whatever the budget (ours: the default budget, at which the values above were tuned; A3C
# on CartPole reached a smoothed 475 at 62k-92k steps with a 300k budget and 58k-61k with 1M,
# where annealing over the budget took 37k-56k and 775k: docs/results.md).

COMBINE_OF_SEGMENTS = {"fixed": "step-mean", "until-terminal": "sum"}
"""The auto ``combine`` of each kind of segment (``Config.combine``'s docstring says why)."""

assert all(set(AUTO_FIELDS) == set(row) for row in AUTO_DEFAULTS.values())


def defaults_key(config: Config, discrete: bool) -> str:
    """Which row of ``AUTO_DEFAULTS`` applies to ``config``."""
    if config.family == "value":
        return "value"
    if not discrete:
        return "continuous_async" if config.is_async else "continuous"
    return "discrete_async" if config.is_async else "discrete"


def resolve(config: Config, env: Any = None) -> Resolved:
    """``config``, validated, as a ``Resolved``: every auto field (``None``) set for its method
    and action space, and a ``trace:PATH`` staleness model's file found.

    ``env`` (an ``envs.Env``) is optional: without it the action space is looked up from
    ``config.env``. Fields given explicitly are kept; a ``Resolved`` is returned as it is.
    """
    if isinstance(config, Resolved):
        return config
    config.validate()
    check_trace(config)
    missing = [name for name in AUTO_FIELDS if getattr(config, name) is None]
    if missing:
        if env is not None:
            discrete = env.discrete
        else:
            from a3c_jax.core import envs  # local: keeps config import light

            discrete = envs.is_discrete(config.env)
        table = AUTO_DEFAULTS[defaults_key(config, discrete)]
        config = config.replace(**{name: table[name] for name in missing})
    if config.combine is None:
        config = config.replace(combine=COMBINE_OF_SEGMENTS[config.segments])
    if config.algo == "a2c":
        config = config.replace(backend="sync")   # what runs, whatever the default said
    return Resolved(**{name: getattr(config, name) for name in GROUPS})


def check_trace(config: Config) -> None:
    """Read the emulated backend's ``trace:PATH`` (its updates.csv, cached for the emulator):
    a missing or unreadable file is a ValueError naming ``staleness``, before any compile."""
    if config.backend == "emulated" and config.staleness.startswith("trace:"):
        from a3c_jax.core import staleness  # local: keeps config import light

        staleness.load_traces(config.staleness.partition(":")[2])
