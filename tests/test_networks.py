"""Networks: output shapes, torso choice, the Gaussian actor-critic for continuous actions
(Q-networks still reject them)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax import networks
from a3c_jax.config import Config
from a3c_jax.envs import Env


def _shapes(net, init_obs_shape, obs_shape):
    """Output shapes (and parameter shapes) by abstract evaluation: nothing is compiled."""
    params = jax.eval_shape(net.init, jax.random.key(0), jnp.ones(init_obs_shape))
    return params, jax.eval_shape(net.apply, params, jnp.ones(obs_shape))


@pytest.mark.parametrize("lead", [(5,), (3, 2)])
def test_actor_critic_mlp_shapes(lead):
    net = networks.ActorCritic(num_actions=3, torso="mlp", hidden=(8, 8))
    params, (logits, value) = _shapes(net, (1, 4), lead + (4,))
    chex.assert_shape(logits, lead + (3,))
    chex.assert_shape(value, lead)
    assert logits.dtype == value.dtype == jnp.float32
    # Hidden sizes are the ones asked for.
    kernels = [p["kernel"].shape for p in jax.tree.leaves(
        params, is_leaf=lambda x: isinstance(x, dict) and "kernel" in x)]
    assert (4, 8) in kernels and (8, 8) in kernels


@pytest.mark.parametrize("lead", [(2,), (3, 2)])
def test_actor_critic_conv_shapes(lead):
    net = networks.ActorCritic(num_actions=6, torso="conv")
    _, (logits, value) = _shapes(net, (1, 10, 10, 4), lead + (10, 10, 4))
    chex.assert_shape(logits, lead + (6,))
    chex.assert_shape(value, lead)


def test_conv_batch_elements_independent():
    """Folding the leading dims in the conv torso must not mix batch elements."""
    net = networks.ActorCritic(num_actions=3, torso="conv")
    # Random parameters of the right shapes (compiling the orthogonal initialisers is slow).
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.ones((1, 10, 10, 4)))
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda s: jnp.asarray(rng.normal(scale=0.1, size=s.shape).astype(np.float32)), shapes)
    forward = jax.jit(net.apply)
    obs = jax.random.uniform(jax.random.key(1), (3, 2, 10, 10, 4))
    other = obs.at[1, 1].set(0.0).at[2].set(1.0)   # change every element but [0, *] and [1, 0]
    logits, value = forward(params, obs)
    logits2, value2 = forward(params, other)
    np.testing.assert_allclose(logits2[0], logits[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(logits2[1, 0], logits[1, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(value2[1, 0], value[1, 0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(value2[2], value[2])
    assert not np.allclose(value2[1, 1], value[1, 1])


def test_q_network_shape():
    _, q = _shapes(networks.QNetwork(num_actions=4, hidden=(16,)), (1, 6), (7, 6))
    chex.assert_shape(q, (7, 4))
    _, qc = _shapes(networks.QNetwork(num_actions=3, torso="conv"), (1, 10, 10, 4),
                    (5, 10, 10, 4))
    chex.assert_shape(qc, (5, 3))


def test_resolve_torso():
    assert networks.resolve_torso("auto", (10, 10, 4)) == "conv"
    assert networks.resolve_torso("auto", (4,)) == "mlp"
    assert networks.resolve_torso("mlp", (10, 10, 4)) == "mlp"
    assert networks.resolve_torso("conv", (10, 10, 4)) == "conv"
    with pytest.raises(ValueError, match="torso"):
        networks.resolve_torso("conv", (4,))
    with pytest.raises(ValueError, match="torso"):
        networks.make_torso("transformer", (8,))


@pytest.mark.parametrize("env_name,torso,num_actions", [
    ("CartPole-v1", "mlp", 2),
    ("Breakout-MinAtar", "conv", 3),
])
def test_make_actor_critic_auto_torso(env_name, torso, num_actions):
    env = Env(env_name, 1)
    net = networks.make_actor_critic(Config(env=env_name, hidden=(32,)), env)
    assert net.torso == torso
    assert net.num_actions == num_actions
    assert tuple(net.hidden) == (32,)
    qnet = networks.make_q_network(Config(env=env_name), env)
    assert qnet.torso == torso and qnet.num_actions == num_actions


def test_continuous_actions_get_a_gaussian_actor_critic_and_no_q_network():
    env = Env("Pendulum-v1", 1)
    assert not env.discrete
    net = networks.make_actor_critic(Config(env="Pendulum-v1"), env)
    assert isinstance(net, networks.GaussianActorCritic) and net.action_dim == 1
    with pytest.raises(ValueError, match="continuous"):
        networks.make_q_network(Config(env="Pendulum-v1"), env)
