"""Networks: output shapes, torso choice, the Gaussian actor-critic for continuous actions
(Q-networks still reject them)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a3c_jax.core import networks
from a3c_jax.config.schema import Config
from a3c_jax.config.defaults import resolve
from a3c_jax.core.envs import Env


def _shapes(net, init_obs_shape, obs_shape):
    """Output shapes (and parameter shapes) by abstract evaluation: nothing is compiled."""
    params = jax.eval_shape(net.init, jax.random.key(0), jnp.ones(init_obs_shape))
    return params, jax.eval_shape(net.apply, params, jnp.ones(obs_shape))


@pytest.mark.parametrize("lead", [(5,), (3, 2)])
def test_actor_critic_mlp_shapes(lead):
    net = networks.ActorCritic(action_dim=3, torso="mlp", hidden=(8, 8))
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
    net = networks.ActorCritic(action_dim=6, torso="conv")
    _, (logits, value) = _shapes(net, (1, 10, 10, 4), lead + (10, 10, 4))
    chex.assert_shape(logits, lead + (6,))
    chex.assert_shape(value, lead)


def test_conv_batch_elements_independent():
    """Folding the leading dims in the conv torso must not mix batch elements."""
    net = networks.ActorCritic(action_dim=3, torso="conv")
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


@pytest.mark.parametrize("channels,features,kernel", [(4, 16, (3, 3)), (7, 5, (2, 4))])
def test_patch_conv_matches_flax_conv(channels, features, kernel):
    """PatchConv is a drop-in nn.Conv (VALID, stride 1): same parameter tree and
    initialisation from the same key, same outputs on the same parameters, leading dims
    kept, and the same gradients."""
    import flax.linen as nn

    init = nn.initializers.orthogonal(np.sqrt(2.0))
    ref = nn.Conv(features, kernel, padding="VALID", kernel_init=init)
    ours = networks.PatchConv(features, kernel, kernel_init=init)
    x = jax.random.normal(jax.random.key(0), (2, 3, 10, 9, channels))
    flat = x.reshape((-1,) + x.shape[2:])
    p_ref = ref.init(jax.random.key(3), flat)
    p_ours = ours.init(jax.random.key(3), x)
    chex.assert_trees_all_equal(p_ref, p_ours)
    params = jax.tree.map(lambda t: t + 0.05, p_ref)   # a non-zero bias too
    y_ref = ref.apply(params, flat).reshape(x.shape[:2] + (11 - kernel[0], 10 - kernel[1],
                                                          features))
    y_ours = ours.apply(params, x)
    np.testing.assert_allclose(y_ours, y_ref, rtol=1e-5, atol=1e-5)
    g_ref = jax.grad(lambda p: jnp.sum(jnp.sin(ref.apply(p, flat))))(params)
    g_ours = jax.grad(lambda p: jnp.sum(jnp.sin(ours.apply(p, flat))))(params)
    chex.assert_trees_all_close(g_ours, g_ref, rtol=1e-4, atol=1e-4)


def test_patch_conv_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="does not fit"):
        networks.PatchConv(4, (3, 3)).init(jax.random.key(0), jnp.ones((1, 2, 5, 1)))


def test_conv_torso_keeps_flax_conv_parameter_names():
    """Checkpoints written with nn.Conv layers load into the patch form (and back)."""
    net = networks.ActorCritic(action_dim=3, torso="conv")
    shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.ones((1, 10, 10, 4)))
    torso = shapes["params"]["ConvTorso_0"]
    assert set(torso) == {"Conv_0", "Conv_1", "Dense_0"}
    chex.assert_shape(torso["Conv_0"]["kernel"], (3, 3, 4, 16))
    chex.assert_shape(torso["Conv_1"]["kernel"], (3, 3, 16, 32))


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
    net = networks.make_actor_critic(resolve(Config(env=env_name, hidden=(32,))), env)
    assert net.torso == torso
    assert net.action_dim == num_actions and net.discrete
    assert tuple(net.hidden) == (32,)
    qnet = networks.make_q_network(Config(env=env_name), env)
    assert qnet.torso == torso and qnet.num_actions == num_actions


def test_continuous_actions_get_a_gaussian_actor_critic_and_no_q_network():
    env = Env("Pendulum-v1", 1)
    assert not env.discrete
    net = networks.make_actor_critic(resolve(Config(env="Pendulum-v1")), env)
    assert isinstance(net, networks.ActorCritic) and not net.discrete
    assert net.action_dim == 1
    with pytest.raises(ValueError, match="resolved"):
        networks.make_actor_critic(Config(env="Pendulum-v1"), env)
    with pytest.raises(ValueError, match="continuous"):
        networks.make_q_network(Config(env="Pendulum-v1"), env)


def test_conv_torso_both_conv_forms_agree():
    """The lax_conv form (flax.linen.Conv) and the default PatchConv form share variables and
    compute the same features."""
    x = jax.random.uniform(jax.random.key(1), (5, 10, 10, 4))
    params = networks.ConvTorso().init(jax.random.key(0), x)
    np.testing.assert_allclose(networks.ConvTorso(lax_conv=True).apply(params, x),
                               networks.ConvTorso().apply(params, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("env_name", ["CartPole-v1", "Pendulum-v1"])
def test_separate_policy_and_value_networks(env_name):
    """shared_torso False: two torsos of the same shape; the value loss reaches only the value
    torso, the policy loss only the policy torso. The shared form keeps its parameter names."""
    env = Env(env_name, 1)
    obs = jnp.ones((3,) + env.obs_shape)
    shared = networks.make_actor_critic(resolve(Config(env=env_name, hidden=(8, 8))), env)
    sep = networks.make_actor_critic(resolve(Config(env=env_name, hidden=(8, 8),
                                                    shared_torso=False)), env)
    p_shared = networks.init_params(shared, jax.random.key(0), env.obs_shape)
    p_sep = networks.init_params(sep, jax.random.key(0), env.obs_shape)
    assert "MLPTorso_1" not in p_shared["params"]
    assert p_sep["params"]["MLPTorso_1"]["Dense_0"]["kernel"].shape == (env.obs_shape[0], 8)
    n = lambda p: sum(x.size for x in jax.tree.leaves(p))  # noqa: E731
    assert n(p_sep) == n(p_shared) + n(p_shared["params"]["MLPTorso_0"])

    def head_loss(which):
        def f(p):
            pi, v = sep.apply(p, obs)
            if which == "value":
                return jnp.sum(v ** 2)
            return jnp.sum((pi if env.discrete else pi.mean) ** 2)
        return jax.grad(f)(p_sep)["params"]

    norm = lambda t: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(t)))  # noqa: E731
    g_v, g_pi = head_loss("value"), head_loss("policy")
    assert norm(g_v["MLPTorso_0"]) == 0.0 and norm(g_v["MLPTorso_1"]) > 0
    assert norm(g_pi["MLPTorso_1"]) == 0.0 and norm(g_pi["MLPTorso_0"]) > 0
