"""Evaluation episodes: a policy played on environments of its own, apart from training.

``make_evaluate(config, episodes, num_steps)`` is one pure function ``evaluate(params, key)
-> Evaluation`` (jittable, vmappable over seeds): ``episodes`` fresh environments (the
evaluation ones: a lost Atari life does not end a game) act with the method's network
(``acting.make_network``) and its greedy policy (``acting.acting_policy(greedy=True)``: the
argmax of Q, or the mode of pi), for ``num_steps`` steps in one ``lax.scan``; each
environment counts its first episode only, and one still running at the last step reports its
return so far with ``finished`` False. Training's in-run evaluations (``eval_every``) and
``a3c-evaluate`` (``analysis.policy.evaluate``) both play through it.

Keys: ``eval_key(seed, index)`` is the ``index``-th evaluation's key of training seed
``seed``, folded from ``jax.random.key(seed)`` with ``EVAL_STREAM``, a tag no training stream
uses, so evaluating never draws from (or perturbs) the training keys.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from a3c_jax.algorithms import acting
from a3c_jax.config.schema import VALUE_ALGOS, Config
from a3c_jax.core import networks
from a3c_jax.core.envs import Env, make_env

EVAL_STREAM = 0xE7A1   # fold_in tag of the evaluation keys of a seed's root key


class Evaluation(NamedTuple):
    """What ``evaluate`` returns (E = episodes)."""

    mean_return: jax.Array   # [] float32: mean of ``returns``
    returns: jax.Array       # [E] float32: each episode's (undiscounted) return
    lengths: jax.Array       # [E] int32: its length in agent steps
    finished: jax.Array      # [E] bool: False where the episode ran past the last step


def episode_limit(env: Env) -> int | None:
    """The environment's own episode limit in agent steps (``max_steps_in_episode``)."""
    limit = getattr(getattr(env, "params", None), "max_steps_in_episode", None)
    return None if limit is None else int(limit)


def eval_key(seed: int, index: int) -> jax.Array:
    """The key of evaluation ``index`` of training seed ``seed`` (module docstring)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), EVAL_STREAM), index)


def make_evaluate(config: Config, episodes: int, num_steps: int = 0, greedy: bool = True,
                  epsilon: float = 0.0) -> Callable:
    """``evaluate(params, key) -> Evaluation`` for a resolved ``config`` (module docstring):
    ``episodes`` environments for ``num_steps`` steps (0: the episode limit). ``greedy=False``
    samples instead (pi, or epsilon-greedy on Q at ``epsilon``). Pure; not jitted."""
    env = make_env(config.env, episodes, config)
    num_steps = num_steps or episode_limit(env)
    if not num_steps:
        raise ValueError(f"{config.env} has no episode limit; give a positive number of steps")
    network = acting.make_network(config, env)
    policy = acting.acting_policy(network, config.algo in VALUE_ALGOS, epsilon, greedy)
    recurrent = networks.is_recurrent(network)

    def evaluate(params, key) -> Evaluation:
        k_reset, k_run = jax.random.split(key)
        env_state = env.reset(k_reset)
        carry = network.initial_carry((episodes,)) if recurrent else None
        zeros = jnp.zeros((episodes,), bool)
        init = (env_state, carry, zeros, jnp.zeros((episodes,), jnp.float32),
                jnp.zeros((episodes,), jnp.int32))

        def step(c, k):
            env_state, carry, finished, ret, length = c
            k_act, k_env = jax.random.split(k)
            carry, action = policy(params, carry, env_state.obs, k_act)
            env_state, out = env.step(k_env, env_state, action)
            done = jnp.logical_or(out.terminated, out.truncated)
            if recurrent:
                carry = networks.reset_carry(carry, done)
            ended = jnp.logical_and(done, jnp.logical_not(finished))
            ret = jnp.where(ended, out.completed_return, ret)
            length = jnp.where(ended, out.completed_length, length)
            return (env_state, carry, jnp.logical_or(finished, ended), ret, length), None

        (env_state, _, finished, ret, length), _ = jax.lax.scan(
            step, init, jax.random.split(k_run, num_steps))
        ret = jnp.where(finished, ret, env_state.episode_return)
        length = jnp.where(finished, length, env_state.episode_length)
        return Evaluation(jnp.mean(ret), ret, length, finished)

    return evaluate


@functools.lru_cache(maxsize=16)
def compiled_evaluate(config: Config, episodes: int, num_steps: int = 0, greedy: bool = True,
                      epsilon: float = 0.0, seeds: int = 0) -> Callable:
    """``make_evaluate``'s function, jitted (vmapped over a leading seed axis of params and
    keys when ``seeds`` > 0); cached, so the seeds and evaluations of a run share one
    executable."""
    evaluate = make_evaluate(config, episodes, num_steps, greedy, epsilon)
    return jax.jit(jax.vmap(evaluate) if seeds else evaluate)
