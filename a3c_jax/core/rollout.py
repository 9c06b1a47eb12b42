"""The unroll of t_max environment steps (``lax.scan``), shared by every method and driver.

An actor's state between segments is an ``ActorState``: its batch of environments and,
where the method needs them, a recurrent carry (A3C-LSTM), the action already chosen for the
current observation (SARSA), and its exploration schedule (value-based methods: each
environment's final epsilon and the env steps it has taken). Parameters are fixed during an
unroll (the paper's thread-local theta').

The acting policy is a pure function ``policy(params, carry, obs, key) -> (carry, action)``;
feedforward policies pass ``carry`` (None) through. ``unroll`` returns one ``Trajectory``
type for every method: ``carry`` (the carry that entered each step) is set for recurrent
actors, ``next_action`` (the action at each true next state) for SARSA; both are None
otherwise.

Segments (``--segments``): ``fixed`` segments are t_max steps of every environment and may
cross an episode end (returns are cut there). ``until-terminal`` segments are the paper's
(Algorithms S2, S3: act "until terminal s_t or t - t_start == t_max"): an environment's
segment ends at its episode's end, so its length T_n lies in 1..t_max. Shapes stay fixed: the
scan still runs t_max steps, an environment whose segment has ended is left as it is (not
stepped: its next segment starts from the reset observation), and ``Trajectory.mask`` [T, B]
marks the steps that belong to each segment (None with fixed segments). Steps outside a
segment carry zero rewards and no episode ends; losses skip them (``a3c_jax.core.combine``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from a3c_jax.core import distributions, networks
from a3c_jax.core.envs import Env, EnvState


class Trajectory(NamedTuple):
    """One segment, time-major: every field is [T, B, ...]."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array          # true next observation (before auto-reset)
    completed_return: jax.Array   # return of an episode that ended at this step, else 0
    completed_length: jax.Array
    carry: Any = None             # recurrent: the carry entering each step (zeros at a start)
    next_action: Any = None       # SARSA: the action at each true next state
    mask: Any = None              # until-terminal segments: [T, B] bool, step in a segment


class ActorState(NamedTuple):
    """What an actor keeps between segments; fields a method does not use are None."""

    env: EnvState
    carry: Any = None         # recurrent carry [B, ...], already reset where an episode began
    action: Any = None        # SARSA: [B] int32 action chosen for env.obs; -1 = not chosen yet
    eps_final: Any = None     # value methods: [B] final epsilon of each environment
    steps: Any = None         # value methods: int32 env steps taken by each environment
    ret_norm: Any = None      # reward normalisation: ``reward_norm.ReturnNorm``


Policy = Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, jax.Array]]


def unroll(env: Env, policy: Policy, params, state: ActorState, key: jax.Array,
           t_max: int, until_terminal: bool = False) -> tuple[ActorState, Trajectory]:
    """Act for ``t_max`` steps in every environment of the batch; auto-resets inside.

    A recurrent carry is reset after every step that ends an episode (terminated or
    truncated) and kept across segments otherwise. With ``until_terminal`` each
    environment's segment ends at its episode's end (module docstring; ``traj.mask``).
    """
    if state.action is not None:
        new_state, traj = _unroll_sarsa(env, policy, params, state, key, t_max,
                                        until_terminal)
    else:
        def step(carry, step_key):
            s, active = carry
            act_key, env_key = jax.random.split(step_key)
            pcarry, action = policy(params, s.carry, s.env.obs, act_key)
            new_env, out = env.step(env_key, s.env, action)
            done = jnp.logical_or(out.terminated, out.truncated)
            if pcarry is not None:
                pcarry = networks.reset_carry(pcarry, done)
            if active is None:
                return (s._replace(env=new_env, carry=pcarry), None), _transition(
                    s.env.obs, action, out, carry=s.carry)
            out = _outside_zeroed(out, active)
            tr = _transition(s.env.obs, action, out, carry=s.carry, mask=active)
            new = s._replace(env=_select(active, new_env, s.env),
                             carry=_select(active, pcarry, s.carry))
            return (new, jnp.logical_and(active, jnp.logical_not(done))), tr

        active0 = jnp.ones((env.num_envs,), bool) if until_terminal else None
        (new_state, _), traj = jax.lax.scan(step, (state, active0),
                                            jax.random.split(key, t_max))
    if new_state.steps is not None:
        taken = t_max if traj.mask is None else (
            jnp.sum(traj.mask.astype(jnp.int32)) // env.num_envs)
        new_state = new_state._replace(steps=new_state.steps + taken)
    return new_state, traj


def _select(active: jax.Array, new, old):
    """``new`` where ``active`` [B], else ``old`` (pytrees with leading axis B)."""
    if new is None:
        return None
    return jax.tree.map(lambda a, b: jnp.where(
        active.reshape(active.shape + (1,) * (a.ndim - 1)), a, b), new, old)


def _outside_zeroed(out, active: jax.Array):
    """A step's output with rewards, episode ends and completed episodes zeroed outside the
    segments (the environment was not really stepped there)."""
    return out._replace(reward=jnp.where(active, out.reward, 0.0),
                        terminated=jnp.logical_and(active, out.terminated),
                        truncated=jnp.logical_and(active, out.truncated),
                        completed_return=jnp.where(active, out.completed_return, 0.0),
                        completed_length=jnp.where(active, out.completed_length, 0))


def _transition(obs, action, out, carry=None, next_action=None, mask=None) -> Trajectory:
    return Trajectory(obs=obs, action=action, reward=out.reward, terminated=out.terminated,
                      truncated=out.truncated, final_obs=out.final_obs,
                      completed_return=out.completed_return,
                      completed_length=out.completed_length, carry=carry,
                      next_action=next_action, mask=mask)


def _unroll_sarsa(env: Env, policy: Policy, params, state: ActorState, key, t_max: int,
                  until_terminal: bool = False):
    """SARSA's unroll: records the action at each true next state as ``next_action``.

    Where the episode continues this is the action taken next (drawn once, used twice);
    where it ended (the env auto-resets), an action is drawn at the pre-reset observation
    ``final_obs`` for a truncated step's bootstrap, and the first action of the new episode
    is drawn at the reset observation.
    """
    k_first, k_steps = jax.random.split(key)
    _, first = policy(params, None, state.env.obs, k_first)
    action0 = jnp.where(state.action >= 0, state.action, first)
    active0 = jnp.ones((env.num_envs,), bool) if until_terminal else None

    def step(carry, step_key):
        env_state, action, active = carry
        k_act, k_env = jax.random.split(step_key)
        new_env, out = env.step(k_env, env_state, action)
        _, a_final = policy(params, None, out.final_obs, k_act)
        _, a_cont = policy(params, None, new_env.obs, k_act)
        done = jnp.logical_or(out.terminated, out.truncated)
        pending = jnp.where(done, a_cont, a_final)
        if active is None:
            tr = _transition(env_state.obs, action, out, next_action=a_final)
            return (new_env, pending, None), tr
        tr = _transition(env_state.obs, action, _outside_zeroed(out, active),
                         next_action=a_final, mask=active)
        return (_select(active, new_env, env_state), jnp.where(active, pending, action),
                jnp.logical_and(active, jnp.logical_not(done))), tr

    (env_state, pending, _), traj = jax.lax.scan(step, (state.env, action0, active0),
                                                 jax.random.split(k_steps, t_max))
    return state._replace(env=env_state, action=pending), traj


def sampling_policy(apply_fn: Callable, recurrent: bool = False, greedy: bool = False
                    ) -> Policy:
    """Sample a ~ pi(.|s) from an actor-critic (its mode with ``greedy``: the argmax of the
    logits, the Gaussian's mean): ``apply_fn(params, obs) -> (policy, value)``, or
    ``apply_fn(params, carry, obs) -> (carry, (policy, value))`` when ``recurrent``; the
    policy output is logits or a distribution (``a3c_jax.core.distributions``); continuous
    actions are unclipped (the environment clips when stepping)."""

    def policy(params, carry, obs, key):
        if recurrent:
            carry, (policy_out, _) = apply_fn(params, carry, obs)
        else:
            policy_out, _ = apply_fn(params, obs)
        dist = distributions.as_distribution(policy_out)
        return carry, dist.mode() if greedy else dist.sample(key)

    return policy


def episode_stats(traj: Trajectory) -> tuple[jax.Array, jax.Array]:
    """(sum of completed-episode returns, number of completed episodes) in a segment (steps
    outside until-terminal segments end no episode; a lost Atari life that ends a training
    episode completes no game)."""
    return jnp.sum(traj.completed_return), jnp.sum(traj.completed_length > 0)
