"""Evaluate saved parameters: run N episodes with the greedy or the sampled policy.

    a3c-evaluate runs/demo/a3c --episodes 100
    a3c-evaluate runs/demo/a2c --seeds 0 --mode sampled
    a3c-evaluate runs/demo/a2c --episodes 10 --video runs/demo/a2c/episode.gif

(``python experiments/evaluate.py`` in a checkout.)

Reads RUN_DIR/config.json and RUN_DIR/params_seed{S}.msgpack of any run (a2c, a3c, recurrent,
continuous-action or value-based), plays ``episodes`` episodes in parallel with
``a3c_jax.analysis.policy.evaluate`` (each environment of a batch plays its first episode to the end),
prints the mean and standard deviation of the return per seed, and writes RUN_DIR/eval.json
(or ``--out``) atomically. ``--video PATH`` also records one episode of the first seed
(``a3c_jax.analysis.video``: ``.gif``, or ``.mp4`` with the ``video`` extra) for the environments it
can draw (CartPole, Pendulum, Acrobot, MountainCar, MinAtar). Bad input (a missing or corrupt
file, parameters that do not fit the config) prints the problem and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import tyro

from a3c_jax.analysis import policy as saved, video
from a3c_jax.shell import files as runlog


@dataclasses.dataclass(frozen=True)
class Args:
    """Evaluate the saved policy of a run directory."""

    run_dir: tyro.conf.Positional[str]
    """Run directory holding config.json and params_seed{S}.msgpack."""
    episodes: int = 100
    """Episodes per seed (played in parallel)."""
    mode: Literal["greedy", "sampled"] = "greedy"
    """greedy: argmax of the logits, the Gaussian's mean, or argmax of Q; sampled: an action
    drawn from the policy (epsilon-greedy with a small epsilon for Q-learning runs)."""
    seeds: tuple[int, ...] = ()
    """Training seeds to evaluate; empty: every seed of the config that has saved params."""
    eval_seed: int = 12345
    """Seed of the evaluation episodes (initial states and sampled actions)."""
    max_steps: int = 0
    """Steps to play; 0: the environment's own episode limit (max_steps_in_episode)."""
    out: str = ""
    """Where to write the results; empty: RUN_DIR/eval.json."""
    video: str = ""
    """Also record one episode (the first seed, ``--mode``, the evaluation seed) to this
    path: .gif, or .mp4 (needs the video extra)."""
    fps: int = 30
    """Frames per second of the video."""


def seed_report(result: dict) -> dict:
    ret = result["returns"]
    return {"mean": float(ret.mean()), "std": float(ret.std()), "min": float(ret.min()),
            "max": float(ret.max()), "mean_length": float(np.mean(result["lengths"])),
            "unfinished": int((~result["finished"]).sum()), "returns": ret.tolist()}


def run(args: Args) -> dict:
    """Evaluate every requested seed; the report eval.json holds. ValueError on bad input."""
    run_dir = Path(args.run_dir)
    if args.episodes <= 0:
        raise ValueError("--episodes must be positive")
    config = saved.read_run_config(run_dir)
    if args.video:
        if args.fps <= 0:
            raise ValueError("--fps must be positive")
        try:
            video.renderer(config.env)
            video.check_path(args.video)
        except ValueError as err:
            raise ValueError(f"--video: {err}") from None
    seeds = list(args.seeds) or saved.saved_seeds(run_dir, config)
    missing = [s for s in seeds if not saved.params_path(run_dir, s).exists()]
    if not seeds or missing:
        raise ValueError(f"no saved parameters for seeds {missing or list(config.seeds)} in "
                         f"{run_dir}")
    policies = {seed: saved.load_policy(run_dir, seed) for seed in seeds}
    num_steps = saved.eval_steps(policies[seeds[0]], args.max_steps)

    results = {}
    for seed, pol in policies.items():
        r = seed_report(saved.evaluate(pol, args.episodes, saved.eval_key(args.eval_seed, seed),
                                       greedy=args.mode == "greedy", max_steps=num_steps))
        results[str(seed)] = r
        print(f"seed {seed}: return {r['mean']:.2f} +- {r['std']:.2f} over {args.episodes} "
              f"{args.mode} episodes (min {r['min']:g}, max {r['max']:g}"
              + (f", {r['unfinished']} unfinished" if r["unfinished"] else "") + ")")
    if args.video:
        first = seeds[0]
        episode = video.record_episode(policies[first], saved.eval_key(args.eval_seed, first),
                                       greedy=args.mode == "greedy", max_steps=num_steps)
        video.write_video(args.video, episode.frames, args.fps)
        print(f"video: {args.video} ({episode.length} frames of seed {first}, return "
              f"{episode.episode_return:g})")
    pooled = np.concatenate([r["returns"] for r in results.values()])
    return {"run_dir": str(run_dir), "algo": config.algo, "env": config.env,
            "policy": policies[seeds[0]].kind, "mode": args.mode, "episodes": args.episodes,
            "max_steps": num_steps, "eval_seed": args.eval_seed, "mean": float(pooled.mean()),
            "std": float(pooled.std()), "seeds": results}


def main(argv: list[str] | None = None) -> int:
    args = tyro.cli(Args, args=argv, description=__doc__)
    try:
        report = run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.run_dir) / "eval.json"
    try:
        runlog.atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    except OSError as err:
        print(f"error: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"all seeds: return {report['mean']:.2f} +- {report['std']:.2f}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
