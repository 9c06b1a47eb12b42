"""Saved policies: load the parameters of any run directory and act with them.

``load_policy(run_dir, seed)`` reads ``config.json`` and ``params_seed{S}.msgpack``, rebuilds
the network the config describes and checks that the saved parameters fit it (tree structure
and every array shape; flax's ``from_bytes`` checks neither). Every problem with the files
(missing, unreadable, corrupt, written for another network or by another version) is raised
as a ``ValueError`` whose message names the file and what is wrong.

A ``SavedPolicy`` acts through one pure function for every kind of run,
``act(params, state, obs, key, greedy) -> (state, action)``, usable inside ``jit``; ``state``
is the LSTM carry of a recurrent actor-critic and ``None`` otherwise. The network and the
acting are training's own (``acting.make_network``, ``acting.acting_policy``). Greedy
actions are the argmax of the logits, the Gaussian's mean, or the argmax of the Q-values;
sampled actions are drawn from the policy's distribution, or, for the value-based methods,
epsilon-greedy with ``SAMPLED_Q_EPSILON``. Continuous actions are returned unclipped (``Env.step`` clips them).

``evaluate`` plays a batch of episodes with one jitted ``lax.scan``
(``a3c_jax.algorithms.evaluation``, what training's in-run evaluations play too): each
environment counts its first episode only, and an episode still running at the step limit
reports its return so far with ``finished`` False.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization, traverse_util

from a3c_jax.config import defaults
from a3c_jax.algorithms import acting, evaluation
from a3c_jax.core import networks
from a3c_jax.shell import files
from a3c_jax.config.schema import VALUE_ALGOS, Config
from a3c_jax.core.envs import Env, make_env

KINDS = ("categorical", "gaussian", "recurrent-categorical", "recurrent-gaussian", "q")
SAMPLED_Q_EPSILON = 0.05
"""Epsilon of the "sampled" (epsilon-greedy) actions of a value-based policy."""


@dataclasses.dataclass(frozen=True, eq=False)
class SavedPolicy:
    """The network ``config`` describes, its parameters and how to act with them. ``kind``
    is one of ``KINDS``; build one with ``load_policy`` or ``make_policy``."""

    config: Config
    env_name: str
    kind: str
    network: nn.Module
    params: Any
    max_episode_steps: int | None
    """The environment's own episode limit (``max_steps_in_episode``), if it has one."""

    @property
    def recurrent(self) -> bool:
        return self.kind.startswith("recurrent")

    def initial_state(self, batch: int):
        """The acting state of ``batch`` fresh episodes: a zero LSTM carry, or None."""
        return self.network.initial_carry((batch,)) if self.recurrent else None

    def reset_state(self, state, done: jax.Array):
        """``state`` restarted where ``done`` [B] (an episode ended at the last step)."""
        return networks.reset_carry(state, done) if self.recurrent else state

    def act(self, params, state, obs: jax.Array, key: jax.Array, greedy: bool = True):
        """``(state, action [B, ...])`` for observations ``obs`` [B, *obs_shape]. Pure;
        ``greedy`` is a Python bool (static under ``jit``). Training's own acting
        (``acting.acting_policy``)."""
        policy = acting.acting_policy(self.network, self.kind == "q", SAMPLED_Q_EPSILON,
                                         greedy)
        return policy(params, state, obs, key)


def _build(config: Config, env: Env) -> SavedPolicy:
    """The policy ``config`` describes for ``env``, without parameters."""
    network, kind = acting.make_network(config, env), "q"
    if config.algo not in VALUE_ALGOS:
        kind = ("recurrent-" if config.recurrent else "") + (
            "categorical" if env.discrete else "gaussian")
    return SavedPolicy(config=config, env_name=config.env, kind=kind, network=network,
                       params=None, max_episode_steps=evaluation.episode_limit(env))


def make_policy(config: Config, params=None, key: jax.Array | None = None) -> SavedPolicy:
    """The policy ``config`` describes, holding ``params`` (fresh ones from ``key`` when
    None; the parameters are not checked here)."""
    config = defaults.resolve(config)
    env = make_env(config.env, 1, config)
    policy = _build(config, env)
    if params is None:
        key = jax.random.key(0) if key is None else key
        params = networks.init_params(policy.network, key, env.obs_shape)
    return dataclasses.replace(policy, params=params)


def read_run_config(run_dir: str | Path) -> Config:
    """The validated, resolved config of a run directory; ValueError naming the problem."""
    path = Path(run_dir) / "config.json"
    try:
        config = files.read_config(run_dir)
    except FileNotFoundError:
        raise ValueError(f"no config.json in {run_dir} (not a run directory?)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a config this version of a3c_jax can read: {err}"
                         ) from None
    try:
        return defaults.resolve(config)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: invalid config: {err}") from None


def params_path(run_dir: str | Path, seed: int) -> Path:
    return Path(run_dir) / f"params_seed{seed}.msgpack"


def saved_seeds(run_dir: str | Path, config: Config) -> list[int]:
    """The seeds of ``config`` that have saved parameters in ``run_dir``."""
    return [s for s in config.seeds if params_path(run_dir, s).exists()]


def _describe(key: tuple) -> str:
    return "/".join(str(k) for k in key)


def _read_params_file(path: Path) -> dict:
    """The raw state dict of a flax msgpack file; ValueError if missing, empty or corrupt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"no saved parameters: {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read it ({err.strerror or err})") from None
    if not data:
        raise ValueError(f"{path}: the file is empty")
    try:
        raw = serialization.msgpack_restore(data)
    except Exception as err:  # msgpack raises several types for corrupt input
        raise ValueError(f"{path}: not a flax msgpack parameter file (corrupt or truncated: "
                         f"{type(err).__name__}: {err or 'unreadable'})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a flax msgpack parameter file (it holds a "
                         f"{type(raw).__name__}, not a tree of arrays)")
    return raw


def _check_params(raw: dict, template, where: str = "saved parameters"):
    """``raw`` (a state dict) restored into ``template``'s structure, after checking that
    both have the same tree and array shapes; ValueError naming the first difference."""
    want = traverse_util.flatten_dict(serialization.to_state_dict(template))
    got = traverse_util.flatten_dict(raw)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(map(_describe, missing[:4]))}"] if missing else []) + (
            [f"unexpected {', '.join(map(_describe, extra[:4]))}"] if extra else [])
        raise ValueError(f"{where}: the parameters do not match the network config.json "
                         f"describes ({'; '.join(parts)}); were they saved by another run?")
    for k in sorted(want):
        if np.shape(got[k]) != np.shape(want[k]):
            raise ValueError(
                f"{where}: {_describe(k)} has shape {np.shape(got[k])} but the network "
                f"config.json describes needs {np.shape(want[k])}; were they saved by "
                f"another run?")
    return jax.tree.map(jnp.asarray, serialization.from_state_dict(template, raw))


def load_policy(run_dir: str | Path, seed: int) -> SavedPolicy:
    """The saved policy of ``seed`` in ``run_dir``; ValueError naming any problem."""
    config = read_run_config(run_dir)
    path = params_path(run_dir, seed)
    raw = _read_params_file(path)
    policy = make_policy(config)
    return dataclasses.replace(policy, params=_check_params(raw, policy.params, str(path)))


def eval_key(eval_seed: int, seed: int) -> jax.Array:
    """The key of the evaluation episodes of training seed ``seed``."""
    return jax.random.fold_in(jax.random.key(eval_seed), seed)


def eval_steps(policy: SavedPolicy, max_steps: int = 0) -> int:
    """Steps an evaluation plays: ``max_steps``, or the environment's limit when 0."""
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if max_steps > 0:
        return int(max_steps)
    if policy.max_episode_steps is None:
        raise ValueError(f"max_steps: {policy.env_name} has no max_steps_in_episode; "
                         "give a positive max_steps")
    return policy.max_episode_steps


def evaluate(policy: SavedPolicy, episodes: int, key: jax.Array, greedy: bool = True,
             max_steps: int = 0) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes in parallel (a batch of environments, each counting its
    first episode) for ``max_steps`` steps (0: the environment's own limit), with one jitted
    ``lax.scan``; a recurrent policy's carry restarts wherever an episode ends.

    Returns NumPy arrays of shape [episodes]: ``returns`` (float64), ``lengths`` (int) and
    ``finished`` (bool; False where the episode was still running at the last step, whose
    return and length so far are reported).
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    num_steps = eval_steps(policy, max_steps)
    # training's in-run evaluations play through the same function
    play = evaluation.compiled_evaluate(policy.config, int(episodes), num_steps, bool(greedy),
                                        SAMPLED_Q_EPSILON)
    _, ret, length, finished = jax.device_get(play(policy.params, key))
    return {"returns": np.asarray(ret, np.float64), "lengths": np.asarray(length),
            "finished": np.asarray(finished, bool)}
