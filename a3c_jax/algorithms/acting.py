"""How a method's network is built and how it acts: what training and a saved policy share.

``make_network(config, env)`` is the network a resolved config describes (a Q-network for the
value methods, else the actor-critic); ``acting_policy`` turns it into a ``rollout.Policy``:
training's behaviour policies (epsilon-greedy on Q, a sample from pi) and their greedy forms,
which ``analysis.policy`` acts with too.
"""

from __future__ import annotations

from flax import linen as nn

from a3c_jax.config.schema import VALUE_ALGOS, Config
from a3c_jax.core import exploration, networks, rollout
from a3c_jax.core.envs import Env


def acting_policy(network: nn.Module, value_based: bool, epsilon=None, greedy: bool = False
                  ) -> rollout.Policy:
    """How a network acts (a ``rollout.Policy``): epsilon-greedy on Q at ``epsilon`` (value
    methods), a sample from pi (actor-critics); with ``greedy``, the argmax of Q or pi's
    mode. Training acts with the first two; a saved policy (``analysis.policy``) with any."""
    if value_based:
        return (exploration.greedy(network.apply) if greedy
                else exploration.epsilon_greedy(network.apply, epsilon))
    return rollout.sampling_policy(network.apply, networks.is_recurrent(network), greedy)


def make_network(config: Config, env: Env) -> nn.Module:
    """The network of a resolved ``config`` for ``env``: a Q-network for the value methods,
    else the actor-critic (``networks.make_actor_critic``)."""
    if config.algo in VALUE_ALGOS:
        return networks.make_q_network(config, env)
    return networks.make_actor_critic(config, env)
