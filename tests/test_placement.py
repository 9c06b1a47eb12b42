"""Where a sync run's games and learner run (a3c_jax.core.placement)."""

from __future__ import annotations

import dataclasses

import jax

from a3c_jax.core.placement import placement, split


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    platform: str
    id: int = 0


GPU, CPU = FakeDevice("gpu"), FakeDevice("cpu")


def test_on_a_cpu_only_machine_everything_runs_on_the_host():
    host = jax.devices("cpu")
    for env in ("ALE/Pong-v5", "CartPole-v1"):
        got = placement(env, jax.devices(), host)
        assert got == (host[0], host[0]) and not split(*got)


def test_with_a_gpu_atari_games_stay_on_the_host_and_the_learner_goes_to_the_gpu():
    assert placement("ALE/Pong-v5", [GPU], [CPU]) == (CPU, GPU)
    assert split(CPU, GPU)
    assert placement("CartPole-v1", [GPU], [CPU]) == (GPU, GPU)   # gymnax: one program
    assert placement("Breakout-MinAtar", [GPU, FakeDevice("gpu", 1)], [CPU]) == (GPU, GPU)


def test_the_sync_trainer_uses_the_decision(monkeypatch):
    from a3c_jax.config.schema import Config
    from a3c_jax.drivers.synchronous import make_train

    t = make_train(Config(algo="a2c", env="CartPole-v1", num_envs=2, total_steps=100))
    assert t.env_device == t.learner_device == jax.devices()[0]
    with t.device_scope():
        assert jax.jit(lambda x: x + 1)(1).devices() == {jax.devices()[0]}
    t.env_device, t.learner_device = jax.devices("cpu")[0], GPU   # as for Atari on a GPU
    with t.device_scope():
        assert jax.config.jax_default_device == jax.devices("cpu")[0]
