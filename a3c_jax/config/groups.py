"""The fields of ``Config``, in the groups ``--help`` shows them in.

Each group is a frozen dataclass whose fields carry their docstrings (tyro turns them into
``--help``, the group's docstring into its heading's description). ``Config``
(``a3c_jax.config.schema``) holds one of each and reads their fields flatly (``config.lr``);
a field is declared here and nowhere else.

A field whose default is ``None`` means "auto" (``AUTO_FIELDS``): ``config.defaults.resolve``
fills it per method family and action space.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from a3c_jax.core import curves
from a3c_jax.core.optim import OptimizerName  # noqa: F401 - a field type; one definition

Algo = Literal["a2c", "a3c", "q1", "sarsa", "nq"]
Segments = Literal["fixed", "until-terminal"]
Combine = Literal["sum", "step-mean", "env-mean"]
StoreMode = Literal["hogwild", "locked", "overwrite"]
Torso = Literal["auto", "mlp", "conv", "atari"]
Backend = Literal["threads", "processes", "ray", "sync", "emulated"]
WandbMode = Literal["off", "offline", "online"]

VALUE_ALGOS = ("q1", "sarsa", "nq")
"""The value-based methods (one-step Q, SARSA, n-step Q); the others are actor-critics."""


@dataclasses.dataclass(frozen=True)
class Environment:
    """The environment, the budget per seed and the seeds."""

    env: str = "CartPole-v1"
    """Any registered gymnax environment id, e.g. CartPole-v1, Acrobot-v1, Breakout-MinAtar."""
    total_steps: int = 500_000
    """Budget in environment steps (the global counter T for the async methods), per seed."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; the sync driver trains all of them in one vmapped call."""
    num_envs: int = 16
    """Synchronous driver: number of vmapped environments."""
    vmap_seeds: bool = True
    """Sync driver: train all seeds in one vmapped call (fast), or one after another (for
    per-seed wall-clock times)."""
    stop_return: float = 0.0
    """Stop a seed early once its smoothed return (episode-weighted mean over the last
    ``stop_window`` env steps) reaches this value; 0 disables. Useful for time-to-score runs."""
    stop_window: int = curves.SMOOTH_WINDOW
    """Window, in env steps, of the smoothed return used by ``stop_return`` (the window the
    analysis tables and figures smooth with, ``core.curves.SMOOTH_WINDOW``, by default)."""
    repeat_action_probability: float = 0.0
    """Atari (ALE/... ids): sticky actions, the chance the emulator repeats the last action
    each frame; 0 is the paper's, 0.25 Machado et al.'s (gymnasium's v5 default)."""
    life_loss_terminal: bool = True
    """Atari: a lost life ends the training episode (the paper's; the game goes on and
    evaluation plays whole games)."""
    reward_clip: bool = True
    """Atari: train on rewards clipped to their sign (the paper's); returns stay scores."""
    noop_max: int = 30
    """Atari: up to this many no-op actions at each game's start (the paper's 30)."""
    max_episode_frames: int = 108_000
    """Atari: emulator frames before a game is truncated (4 per agent step; 30 minutes)."""


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """The method and its loss."""

    algo: Algo = "a2c"
    """Algorithm: a2c (synchronous, vmapped), a3c (asynchronous actor-critic), q1 (async one-step
    Q-learning), sarsa (async one-step SARSA), nq (async n-step Q-learning)."""
    t_max: int = 5
    """Segment length: environment steps per update (also I_AsyncUpdate for the Q methods)."""
    segments: Segments = "fixed"
    """fixed (t_max steps of every env, across episode ends; ours) or until-terminal (the
    paper's: at t_max or the episode's end; sync: total_steps // (t_max N) updates)."""
    combine: Combine | None = None
    """How the loss combines an update's N segments (sync envs, or a worker's E): step-mean
    (sum / sum_n T_n; ours), sum (the paper's accumulated gradient) or env-mean. None (auto):
    sum with until-terminal segments (the paper's rule: with segments of varying length only
    the sum weighs every step of every update alike), step-mean with fixed segments."""
    gamma: float | None = None
    """Discount factor; None (auto): 0.99 for discrete actions, 0.95 for continuous ones
    (0.9 for a3c there)."""
    gae_lambda: float = 1.0
    """GAE lambda; 1.0 is the paper's n-step advantage."""
    value_coef: float = 0.5
    """Value-loss coefficient c in c (G - V)^2: 0.5 (ours, common practice: halves the
    critic's gradient); 1 is Algorithm S3 as written, d(R - V)^2/d theta_v."""
    entropy_coef: float | None = None
    """Entropy bonus coefficient beta; None (auto): 0.01 for discrete actions, 1e-4 for
    continuous ones (the paper's values)."""
    reward_scale: float | None = None
    """Multiply rewards by this in the loss (after reward_norm; logged returns stay raw);
    None (auto): 1 (ours; it was 0.1 on continuous actions before reward_norm)."""
    reward_norm: bool | None = None
    """Divide rewards in the loss by the running std of the discounted return (SB3's
    VecNormalize); None (auto): on for a2c / a3c, off for q1 / sarsa / nq (ours)."""
    adv_norm: bool = False
    """Actor-critic: standardise advantages over each segment's [T, B] batch before the policy
    term (measured on Pendulum-v1: it hurt, so it is off for both action spaces)."""
    obs_norm: bool | None = None
    """Actor-critic: standardise observations with running mean/std (kept with the parameters,
    saved in checkpoints); None (auto): off (their statistics drift: docs/results.md)."""
    eps_final: float = -1.0
    """Q methods: final epsilon; negative samples it per worker from {0.1, 0.01, 0.5} with
    probabilities {0.4, 0.3, 0.3} (the paper)."""
    eps_anneal_steps: int | None = None
    """Q methods: env steps of the run (T; each env's steps times the number of envs) over
    which epsilon anneals from 1 to its final value; None (auto): 50000 for q1 / sarsa / nq
    (ours, tuned on CartPole-v1 with 2 workers; the paper anneals over 4M frames)."""
    target_interval: int | None = None
    """Q methods: copy the target parameters every I_target global steps; None (auto): 1000
    for q1 / sarsa / nq (ours, tuned on CartPole-v1)."""


@dataclasses.dataclass(frozen=True)
class Optimisation:
    """The optimiser and its learning rate."""

    lr: float | None = None
    """Learning rate (peak value when annealed); None (auto): 5e-3 for a2c and 1e-3 for a3c
    on discrete actions, 2e-3 for a2c and 3e-4 for a3c on continuous ones, 1e-3 for q1 /
    sarsa / nq (all ours, tuned on CartPole-v1 and Pendulum-v1; the paper samples
    LogUniform(1e-4, 1e-2) per run)."""
    lr_anneal: bool = True
    """Anneal the learning rate linearly to 0 over ``lr_anneal_steps`` env steps (the paper
    anneals, over its budget); off: constant."""
    lr_anneal_steps: int = 500_000
    """Env steps over which the annealed learning rate falls to 0 (it stays 0 after): a fixed
    horizon, so runs of any budget learn alike up to where they stop and a longer run is not
    a different, worse one (annealed over 1M steps, A3C on CartPole took 775k steps to 475,
    against 37k-56k over 300k). 500000 is the default budget the other defaults were tuned
    at (ours; docs/results.md). 0: over the run's budget ``total_steps``, the paper's schedule
    and the default before."""
    optimizer: OptimizerName = "rmsprop"
    """rmsprop (statistics shared across workers; the paper's default), rmsprop_local
    (per-worker statistics), sgd (m <- mu m + d, optax's momentum SGD) or sgd_paper (the
    paper's momentum SGD: m <- alpha m + (1 - alpha) d); theta <- theta - lr m."""
    rms_decay: float = 0.99
    """RMSProp decay alpha: g <- alpha g + (1 - alpha) d^2."""
    rms_eps: float = 1e-5
    """RMSProp epsilon, inside the square root as in the paper: d / sqrt(g + eps)."""
    momentum: float = 0.9
    """Momentum mu of sgd, or alpha of sgd_paper."""
    max_grad_norm: float = 0.0
    """Clip gradients to this global norm; 0 disables clipping."""
    max_nonfinite: int = 5
    """A gradient with a NaN or infinite entry is never applied (the update is skipped and
    counted); after this many consecutive skipped updates the run stops as diverged."""


@dataclasses.dataclass(frozen=True)
class Parallelism:
    """Where and how the asynchronous actor-learners run."""

    backend: Backend = "threads"
    """Where the method runs: threads (async workers in one process), processes (one process
    per worker on a shared-memory store), ray (Ray actors and a parameter-server actor), or
    sync (the synchronous counterpart over ``num_envs`` lockstep environments; for a3c this
    is A2C), or emulated (W virtual workers applied in a fixed order inside one jitted
    program, with a chosen ``staleness``: reproducible; see a3c_jax/drivers/emulated)."""
    workers: int = 2
    """Asynchronous driver: number of actor-learner threads W."""
    envs_per_worker: int = 1
    """Asynchronous driver: environments per worker E (the paper uses 1)."""
    store_mode: StoreMode = "hogwild"
    """Shared store write mode: hogwild (lock-free in-place), locked (control), overwrite (the
    naive idiom that loses updates; for measurement only)."""
    staleness: str = "round-robin"
    """Emulated backend: how many updates old each gradient's parameters are (tau):
    fixed:k, round-robin (tau = W - 1), uniform:a:b, geometric:p (P(tau = k) = (1 - p)^k p),
    or trace:PATH (replay the staleness column of a run's updates.csv, or its directory)."""
    ray_address: str = ""
    """Ray backend: address of an existing cluster; empty starts a local Ray instance."""
    max_restarts: int = 3
    """Process and Ray backends: a worker that dies (killed, raising, or on a lost Ray node) is
    started again from the store's current parameters, with fresh environments, up to this
    many times per seed; then the run stops with its error. 0: the first failure stops it."""


@dataclasses.dataclass(frozen=True)
class Network:
    """The actor-critic or Q-network."""

    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP torso."""
    torso: Torso = "auto"
    """Network torso: auto picks conv for image observations (MinAtar), mlp otherwise."""
    shared_torso: bool | None = None
    """Actor-critic: policy and value heads on one torso (the paper's Atari network), or
    separate policy and value networks of the same shape (False; the paper's continuous
    control, SB3's default); None (auto): shared for discrete and continuous actions."""
    recurrent: bool = False
    """Actor-critic: an LSTM after the torso (A3C-LSTM); its carry is kept across segments per
    env and reset at episode ends; gradients are truncated at segment boundaries (t_max)."""
    lstm_size: int = 256
    """Cells of the LSTM when ``recurrent`` (the paper uses 256)."""


@dataclasses.dataclass(frozen=True)
class Output:
    """The run directory, what is logged, and where it is shown."""

    out: str = "runs/default"
    """Output directory for config.json, metrics.csv, plots and the checkpoint."""
    overwrite: bool = False
    """Clear an existing run directory at ``out`` first (else it is refused)."""
    resume: bool = False
    """Continue the run at ``out`` from its checkpoint to ``total_steps`` (same config)."""
    checkpoint_s: float = 60.0
    """Seconds between checkpoints for ``resume`` (also when a seed ends); 0: only then."""
    log_interval: int = 0
    """Env steps between logged rows; 0 picks about 200 rows per run."""
    log_seconds: float = 1.0
    """Also log a row once this many seconds of training pass without one; 0: by env steps."""
    eval_every: int = 0
    """Env steps between greedy evaluations during training (argmax Q, or pi's mode, on
    environments of their own; ``a3c_jax.algorithms.evaluation``): ``eval_return`` in
    metrics.csv at the row at or after each multiple. 0 (the default): none, since each one
    plays ``eval_episodes`` whole episodes (up to the episode limit) and compiles once, a
    cost a run asks for rather than pays unasked (short runs and the tests stay as fast)."""
    eval_episodes: int = 10
    """Episodes each greedy evaluation plays (in parallel); their mean is ``eval_return``."""
    progress: bool = True
    """Show progress: a bar on a terminal, else a plain line every 10 s
    (a3c_jax/shell/progress.py)."""
    tensorboard: bool = False
    """Write TensorBoard event files to ``out``/tensorboard (needs the tensorboard extra)."""
    wandb: WandbMode = "off"
    """Log to Weights & Biases, offline (``out``/wandb; ``wandb sync`` uploads it later) or
    online (needs the wandb extra)."""
    wandb_project: str = "a3c_jax"
    """Weights & Biases project name."""


GROUPS: dict[str, type] = {"environment": Environment, "algorithm": Algorithm,
                           "optimisation": Optimisation, "parallelism": Parallelism,
                           "network": Network, "output": Output}
"""``Config``'s groups by attribute name, in ``--help``'s order."""

GROUP_OF: dict[str, str] = {f.name: group for group, cls in GROUPS.items()
                            for f in dataclasses.fields(cls)}
"""The group of every flat field name: ``GROUP_OF["lr"] == "optimisation"``."""

FIELD_NAMES: tuple[str, ...] = tuple(GROUP_OF)
"""Every field of ``Config``, flat, group by group."""

AUTO_FIELDS = ("lr", "gamma", "entropy_coef", "obs_norm", "reward_scale", "reward_norm",
               "shared_torso", "target_interval", "eps_anneal_steps")
"""Fields whose ``None`` means "auto" per method and action space: ``a3c_jax.config.defaults
.resolve`` fills them from ``AUTO_DEFAULTS``."""

SEGMENT_AUTO_FIELDS = ("combine",)
"""Fields whose ``None`` means "auto" by the kind of segments (``defaults.COMBINE_OF_SEGMENTS``)."""
