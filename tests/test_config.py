"""Config.validate: every bad value is rejected with the field named; good ones pass."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from a3c_jax.config.defaults import resolve
from a3c_jax.config.schema import AUTO_FIELDS, Config, Resolved

BAD = [
    # (changes, field the message must name)
    (dict(env="NoSuchEnv-v0"), "env"),
    (dict(num_envs=0), "num_envs"),
    (dict(num_envs=-4), "num_envs"),
    (dict(num_envs=2.0), "num_envs"),
    (dict(num_envs=True), "num_envs"),
    (dict(t_max=0), "t_max"),
    (dict(t_max=-5), "t_max"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=-100), "total_steps"),
    (dict(workers=0), "workers"),
    (dict(workers=-1, algo="a3c"), "workers"),
    (dict(envs_per_worker=0), "envs_per_worker"),
    (dict(eps_anneal_steps=0), "eps_anneal_steps"),
    (dict(target_interval=0), "target_interval"),
    (dict(total_steps=79, num_envs=16, t_max=5), "total_steps"),    # one update is 80 steps
    (dict(algo="a3c", total_steps=9, envs_per_worker=2, t_max=5), "total_steps"),
    (dict(lr=math.nan), "lr"),
    (dict(lr=math.inf), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=0.0), "lr"),
    (dict(gamma=1.5), "gamma"),
    (dict(gamma=-0.1), "gamma"),
    (dict(gamma=math.nan), "gamma"),
    (dict(gae_lambda=1.01), "gae_lambda"),
    (dict(rms_decay=1.0), "rms_decay"),
    (dict(rms_eps=0.0), "rms_eps"),
    (dict(rms_eps=math.inf), "rms_eps"),
    (dict(momentum=1.0), "momentum"),
    (dict(max_grad_norm=-0.5), "max_grad_norm"),
    (dict(max_grad_norm=math.nan), "max_grad_norm"),
    (dict(value_coef=-1.0), "value_coef"),
    (dict(entropy_coef=-0.01), "entropy_coef"),
    (dict(entropy_coef=math.inf), "entropy_coef"),
    (dict(eps_final=1.5), "eps_final"),
    (dict(log_interval=-1), "log_interval"),
    (dict(stop_window=0), "stop_window"),
    (dict(stop_return=math.nan), "stop_return"),
    (dict(seeds=()), "seeds"),
    (dict(seeds=(0, 1, 0)), "seeds"),
    (dict(hidden=()), "hidden"),
    (dict(hidden=(64, 0)), "hidden"),
    (dict(algo="a2c", optimizer="rmsprop_local"), "rmsprop_local"),
    (dict(algo="nq", backend="sync", optimizer="rmsprop_local"), "rmsprop_local"),
    (dict(algo="q1", backend="sync", total_steps=79, num_envs=16), "total_steps"),
    (dict(segments="episode"), "segments"),
    (dict(combine="mean"), "combine"),
    (dict(reward_norm=1), "reward_norm"),
    (dict(shared_torso="no"), "shared_torso"),
    (dict(algo="nq", shared_torso=False), "shared_torso"),
    (dict(recurrent=True, shared_torso=False), "shared_torso"),
    (dict(algo="a3c", backend="emulated", segments="until-terminal"), "segments"),
]


@pytest.mark.parametrize("changes,field", BAD,
                         ids=[f"{f}:{list(c.values())}" for c, f in BAD])
def test_bad_config_rejected_naming_field(changes, field):
    config = Config(**changes)
    with pytest.raises(ValueError) as err:
        config.validate()
    assert re.search(rf"\b{re.escape(field)}\b", str(err.value)), str(err.value)


def test_unknown_env_message_lists_valid_ids():
    with pytest.raises(ValueError, match="CartPole-v1"):
        Config(env="cartpole").validate()


GOOD = [
    dict(),
    dict(gamma=0.0), dict(gamma=1.0), dict(gae_lambda=0.0),
    dict(max_grad_norm=0.0), dict(entropy_coef=0.0), dict(eps_final=-1.0), dict(eps_final=0.0),
    dict(total_steps=80, num_envs=16, t_max=5),                    # exactly one update
    dict(algo="a3c", optimizer="rmsprop_local", total_steps=5),
    dict(env="Breakout-MinAtar", torso="conv"),
    dict(seeds=(3, 1, 2)), dict(log_interval=0), dict(combine="env-mean"),
    dict(combine="step-mean", segments="until-terminal"), dict(algo="nq", reward_norm=True),
    dict(shared_torso=False, optimizer="sgd_paper"),
    dict(algo="q1", backend="sync"), dict(algo="a3c", backend="sync"),
    dict(algo="nq", target_interval=10_000, eps_anneal_steps=100_000),
]


@pytest.mark.parametrize("changes", GOOD, ids=[str(c) for c in GOOD])
def test_good_config_accepted(changes):
    config = Config(**changes)
    assert config.validate() is config


def test_derived_sizes():
    sync = Config(num_envs=8, t_max=5, total_steps=1000)
    assert not sync.is_async
    assert sync.batch_envs == 8 and sync.steps_per_update == 40 and sync.num_updates == 25
    async_ = Config(algo="a3c", workers=4, envs_per_worker=2, t_max=5, total_steps=1000)
    assert async_.is_async
    assert async_.batch_envs == 2 and async_.steps_per_update == 10
    assert async_.num_updates == 100
    q_sync = Config(algo="q1", backend="sync", num_envs=8, t_max=5, total_steps=1000)
    assert q_sync.is_sync and not q_sync.is_async and q_sync.family == "value"
    assert q_sync.batch_envs == 8 and q_sync.steps_per_update == 40
    assert Config(algo="sarsa").is_async and Config(algo="a2c").family == "actor_critic"
    assert Config(algo="a3c", backend="sync").is_sync   # A2C under another name


def test_auto_fields_start_unset():
    """Per-method fields are None ("auto") until ``defaults.resolve`` fills them; the value
    methods' target interval and epsilon anneal are among them."""
    assert {"target_interval", "eps_anneal_steps", "lr"} <= set(AUTO_FIELDS)
    config = Config(algo="q1")
    assert all(getattr(config, name) is None for name in AUTO_FIELDS)
    assert not isinstance(config, Resolved)
    assert config.validate() is config          # unset auto fields are valid
    with pytest.raises(ValueError, match="unset"):
        Resolved(algo="q1")
    assert Resolved(algo="q1", combine="sum", **{name: 1 for name in AUTO_FIELDS}).lr == 1
    with pytest.raises(ValueError, match="combine"):   # auto by the segments, still auto
        Resolved(algo="q1", **{name: 1 for name in AUTO_FIELDS})


def test_frozen_and_round_trip():
    config = Config(lr=3e-4, seeds=(0, 1), hidden=(32, 16))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    assert config.replace(lr=1e-3).lr == 1e-3 and config.lr == 3e-4
    data = config.to_dict()
    data["seeds"], data["hidden"] = list(data["seeds"]), list(data["hidden"])  # as from JSON
    assert Config.from_dict(data) == config
    with pytest.raises(ValueError, match="nonsense"):
        Config.from_dict({**config.to_dict(), "nonsense": 1})


@pytest.mark.parametrize("reduction, algo, combine", [
    ("sum", "a3c", "sum"), ("mean", "a3c", "env-mean"), ("mean", "a2c", "env-mean"),
    ("sum", "a2c", "step-mean")])
def test_config_json_written_before_combine_still_loads(reduction, algo, combine):
    """Run directories written when the loss had ``reduction`` (sum or mean over each env's
    segment, the envs averaged) load with the ``combine`` of the same loss where one exists."""
    data = Config(algo=algo).to_dict()
    del data["combine"]
    data["reduction"] = reduction
    assert Config.from_dict(data).combine == combine


@pytest.mark.parametrize("n_envs", [1, 3])
def test_old_reduction_maps_to_the_combine_of_the_same_loss(n_envs):
    """Old ``reduction`` over [T, N] per-step terms: (1/N) sum_n sum_t ("sum") or
    (1/N) sum_n mean_t ("mean"); the mapped combine gives the same scalar where it can (sum
    at N = 1; mean always) and the same direction otherwise."""
    import jax.numpy as jnp

    from a3c_jax.config.schema import combine_of_reduction
    from a3c_jax.core.combine import combine

    x = jnp.arange(1.0, 5 * n_envs + 1).reshape(5, n_envs)
    old = {"sum": jnp.mean(jnp.sum(x, axis=0)), "mean": jnp.mean(jnp.mean(x, axis=0))}
    for reduction, value in old.items():
        new = combine(x, how=combine_of_reduction(reduction, n_envs))
        if reduction == "mean" or n_envs == 1:
            assert float(new) == pytest.approx(float(value))
        else:
            assert float(new) * 5 == pytest.approx(float(value))   # step-mean = old / t_max


# Which rows of defaults.AUTO_DEFAULTS each auto field is read in (elsewhere it is unused).
_AC = ("discrete", "discrete_async", "continuous", "continuous_async")
_USED_IN = {"entropy_coef": _AC, "obs_norm": _AC, "shared_torso": _AC,
            "target_interval": ("value",), "eps_anneal_steps": ("value",)}
_BOOL_WORDS = {"obs_norm": ("off", "on"), "reward_norm": ("off", "on"),
               "shared_torso": ("separate", "shared")}


def _flag_help(name: str) -> str:
    """What ``--help`` says of a field's flag (its docstring, without the default)."""
    import contextlib
    import io

    from a3c_jax.commands import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        cli.parse_config(["--help"])
    lines = [line.strip("│ ╰─") for line in buf.getvalue().splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith(cli.flag(name) + " "))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i] or lines[i].startswith("-"))
    text = " ".join(" ".join(lines[start:end]).split()[2:])
    return re.sub(r"\(default: [^)]*\)", "", text)


@pytest.mark.parametrize("name", AUTO_FIELDS + ("combine",))
def test_help_states_every_per_method_default(name):
    """``--help`` (the field docstrings) names the value each method family gets for every
    auto field, so what runs can be read before running it."""
    from a3c_jax.config import defaults

    doc = _flag_help(name)
    if name == "combine":   # by segments, not by method family
        for segments, combine in defaults.COMBINE_OF_SEGMENTS.items():
            assert f"{combine} with {segments}" in doc, doc
        return
    numbers = {float(x) for x in re.findall(r"(?<![\w.])\d[\d_]*(?:\.\d+)?(?:e-?\d+)?", doc)}
    for row in _USED_IN.get(name, _AC + ("value",)):
        value = defaults.AUTO_DEFAULTS[row][name]
        if isinstance(value, bool):
            assert _BOOL_WORDS[name][value] in doc, (name, row, value)
        else:
            assert float(value) in numbers, (name, row, value, doc)


def test_until_terminal_segments_combine_as_the_paper_by_default():
    """The paper's segments without --combine take its rule (sum: every step of every update
    weighs alike); fixed segments keep step-mean; an explicit choice is kept."""
    assert resolve(Config(segments="until-terminal")).combine == "sum"
    assert resolve(Config(algo="a3c", segments="until-terminal")).combine == "sum"
    assert resolve(Config()).combine == "step-mean"
    assert resolve(Config(segments="until-terminal", combine="step-mean")).combine == "step-mean"


@pytest.mark.parametrize("backend", ["processes", "ray", "emulated"])
def test_a2c_refuses_an_asynchronous_backend(backend):
    with pytest.raises(ValueError, match=f"^backend {backend} runs asynchronous workers"):
        Config(algo="a2c", backend=backend).validate()


def test_a2c_records_the_backend_that_ran():
    """a2c always runs the synchronous driver: its resolved config says so."""
    assert resolve(Config(algo="a2c")).backend == "sync"
    assert resolve(Config(algo="a3c")).backend == "threads"


def test_until_terminal_segments_are_refused_for_ale_games():
    with pytest.raises(ValueError, match="^segments until-terminal is not available for ALE"):
        Config(env="ALE/Pong-v5", segments="until-terminal").validate()


@pytest.mark.parametrize("optimizer, clip", [("rmsprop", 0.5), ("sgd", 0.0)])
def test_old_reduction_sum_with_many_envs_trains_as_before(optimizer, clip):
    """An old ``reduction: sum`` config with N > 1 (loss (1/N) sum_n sum_t l) loads as
    step-mean with its clipping, RMSProp eps or SGD lr rescaled: its updates equal the old
    loss's, rebuilt here as the ``sum`` combine divided by N."""
    import jax

    from a3c_jax.core import losses
    from a3c_jax.drivers.synchronous import make_train

    old = Config(algo="a2c", num_envs=4, total_steps=400, optimizer=optimizer, lr=1e-3,
                 max_grad_norm=clip, obs_norm=False, reward_norm=False, combine="sum")
    data = old.to_dict()
    del data["combine"]
    data["reduction"] = "sum"
    loaded = Config.from_dict(data)
    assert loaded.combine == "step-mean"

    def old_loss(params, apply_fn, traj, cfg):
        loss, m = losses.actor_critic_segment_loss(params, apply_fn, traj, cfg)
        return loss / old.num_envs, m

    got = []
    for config, loss_fn in ((loaded, None), (old, old_loss)):
        trainer = make_train(config, loss_fn)
        state, _ = jax.jit(lambda s, t=trainer: t.run_chunk(s, 4))(
            trainer.init(jax.random.key(0)))
        got.append(jax.device_get(state.params))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: abs(a - b).max(), got[1],
                                         make_train(old).init(jax.random.key(0)).params))
    assert max(float(m) for m in moved) > 1e-5   # the updates did move the parameters
    for a, b in zip(jax.tree.leaves(got[0]), jax.tree.leaves(got[1])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
