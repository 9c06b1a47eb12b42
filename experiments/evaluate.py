"""Evaluate saved parameters: run N episodes with the greedy or the sampled policy.

    python experiments/evaluate.py runs/demo/a3c --episodes 100
    python experiments/evaluate.py runs/demo/a2c --seeds 0 --mode sampled

Reads RUN_DIR/config.json and RUN_DIR/params_seed{S}.msgpack, plays ``episodes`` episodes in
parallel (one jitted rollout over a batch of environments, each playing its first episode to
the end), prints the mean and standard deviation of the return per seed, and writes
RUN_DIR/eval.json (or ``--out``) atomically.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from a3c_jax import networks, runlog
from a3c_jax.envs import Env


@dataclasses.dataclass(frozen=True)
class Args:
    """Evaluate the saved policy of a run directory."""

    run_dir: tyro.conf.Positional[str]
    """Run directory holding config.json and params_seed{S}.msgpack."""
    episodes: int = 100
    """Episodes per seed (played in parallel)."""
    mode: Literal["greedy", "sampled"] = "greedy"
    """greedy: argmax of the policy logits; sampled: a ~ softmax(logits)."""
    seeds: tuple[int, ...] = ()
    """Training seeds to evaluate; empty: every seed of the config that has saved params."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes (initial states and sampled actions)."""
    max_steps: int = 0
    """Steps to play; 0: the environment's own episode limit (max_steps_in_episode)."""
    out: str = ""
    """Where to write the results; empty: RUN_DIR/eval.json."""


def episode_limit(env: Env, max_steps: int) -> int:
    if max_steps > 0:
        return max_steps
    limit = getattr(env.params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(f"max_steps: {env.name} has no max_steps_in_episode; pass --max-steps")
    return int(limit)


def make_evaluate(network, env: Env, greedy: bool, num_steps: int):
    """``evaluate(params, key) -> (returns [B], lengths [B], finished [B])``, jitted.

    Each environment of the batch counts its first episode only; an episode still running after
    ``num_steps`` steps reports its return so far with ``finished`` False.
    """

    def evaluate(params, key):
        k_reset, k_run = jax.random.split(key)
        state = env.reset(k_reset)
        zeros = jnp.zeros((env.num_envs,), jnp.float32)
        init = (state, jnp.zeros((env.num_envs,), bool), zeros,
                jnp.zeros((env.num_envs,), jnp.int32))

        def step(carry, k):
            state, finished, ret, length = carry
            k_act, k_env = jax.random.split(k)
            logits, _ = network.apply(params, state.obs)
            action = (jnp.argmax(logits, axis=-1) if greedy
                      else jax.random.categorical(k_act, logits))
            state, out = env.step(k_env, state, action)
            ended = jnp.logical_and(jnp.logical_or(out.terminated, out.truncated),
                                    jnp.logical_not(finished))
            ret = jnp.where(ended, out.completed_return, ret)
            length = jnp.where(ended, out.completed_length, length)
            return (state, jnp.logical_or(finished, ended), ret, length), None

        (state, finished, ret, length), _ = jax.lax.scan(
            step, init, jax.random.split(k_run, num_steps))
        ret = jnp.where(finished, ret, state.episode_return)
        length = jnp.where(finished, length, state.episode_length)
        return ret, length, finished

    return jax.jit(evaluate)


def check_like(params, template) -> None:
    """Raise ValueError unless ``params`` has the template's structure and shapes (flax's
    from_bytes checks neither)."""
    if jax.tree.structure(params) != jax.tree.structure(template) or any(
            np.shape(p) != np.shape(t)
            for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(template))):
        raise ValueError("saved parameters do not match the network config.json describes")


def saved_seeds(run_dir: Path, config) -> list[int]:
    return [s for s in config.seeds if (run_dir / f"params_seed{s}.msgpack").exists()]


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    run_dir = Path(args.run_dir)
    if args.episodes <= 0:
        print("error: --episodes must be positive", file=sys.stderr)
        return 2
    try:
        config = runlog.read_config(run_dir)
    except FileNotFoundError:
        print(f"error: no config.json in {run_dir}", file=sys.stderr)
        return 2
    seeds = list(args.seeds) or saved_seeds(run_dir, config)
    missing = [s for s in seeds if not (run_dir / f"params_seed{s}.msgpack").exists()]
    if not seeds or missing:
        print(f"error: no saved parameters for seeds {missing or list(config.seeds)} in "
              f"{run_dir}", file=sys.stderr)
        return 2

    env = Env(config.env, args.episodes)
    network = networks.make_actor_critic(config, env)
    template = network.init(jax.random.key(0), jnp.zeros((1,) + env.obs_shape, jnp.float32))
    num_steps = episode_limit(env, args.max_steps)
    evaluate = make_evaluate(network, env, args.mode == "greedy", num_steps)

    results = {}
    all_returns = []
    for seed in seeds:
        params = runlog.load_params(run_dir, seed, template)
        try:
            check_like(params, template)
        except ValueError as err:
            print(f"error: seed {seed}: {err}", file=sys.stderr)
            return 2
        ret, length, finished = jax.device_get(
            evaluate(params, jax.random.fold_in(jax.random.key(args.eval_seed), seed)))
        ret = np.asarray(ret, np.float64)
        all_returns.append(ret)
        results[str(seed)] = {
            "mean": float(ret.mean()), "std": float(ret.std()), "min": float(ret.min()),
            "max": float(ret.max()), "mean_length": float(np.mean(length)),
            "unfinished": int((~np.asarray(finished)).sum()), "returns": ret.tolist()}
        print(f"seed {seed}: return {ret.mean():.2f} +- {ret.std():.2f} over {args.episodes} "
              f"{args.mode} episodes (min {ret.min():g}, max {ret.max():g}"
              + (f", {results[str(seed)]['unfinished']} unfinished" if
                 results[str(seed)]["unfinished"] else "") + ")")
    pooled = np.concatenate(all_returns)
    report = {"run_dir": str(run_dir), "algo": config.algo, "env": config.env,
              "mode": args.mode, "episodes": args.episodes, "max_steps": num_steps,
              "eval_seed": args.eval_seed, "mean": float(pooled.mean()),
              "std": float(pooled.std()), "seeds": results}
    out = Path(args.out) if args.out else run_dir / "eval.json"
    runlog.atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"all seeds: return {pooled.mean():.2f} +- {pooled.std():.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
