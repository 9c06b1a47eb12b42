"""What a run directory trained, as a name, and which runs may be pooled under one name.

A run's config.json says what it trained. ``method_label`` names the method and its sizes
('a3c W=2 E=1', 'a2c N=16'); runs that share a method label but differ in another option get
that option appended, ``key=value``, for each option that differs among them ('a2c N=16' and
'a2c N=16 segments=until-terminal combine=sum'; 'a3c W=2 E=1 backend=threads' and
'a3c W=2 E=1 backend=processes'), so two runs that learned differently never share a name.

Runs are pooled (their seeds aggregated as one method) only when their configs are equal apart
from ``POOLABLE_FIELDS`` (the seeds and where and how the run is logged), and then only when no
seed appears in two of them (``check_pooling``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Sequence

from a3c_jax.config.groups import Output

POOLABLE_FIELDS = frozenset({f.name for f in dataclasses.fields(Output)}
                            | {"seeds", "ray_address"})
"""Fields that never change what a run learns: its seeds, its run directory, what it logs
and where it shows it, its checkpoints (``Output``), and the Ray cluster it ran on."""


def is_sync(config: dict) -> bool:
    """Whether a run's config trained on the synchronous driver (a2c, or backend sync)."""
    return config["algo"] == "a2c" or config.get("backend") == "sync"


def run_label(config: dict) -> str:
    """The method a run trained, as its rows name it: a2c, a3c, nq, nq_sync..."""
    if not is_sync(config):
        return config["algo"]
    return "a2c" if config["algo"] in ("a2c", "a3c") else f"{config['algo']}_sync"


def method_label(config: dict) -> str:
    """A readable name for what a run trained: 'a3c W=2 E=1', 'a2c N=2' or 'nq_sync N=2'."""
    if is_sync(config):
        return f"{run_label(config)} N={config['num_envs']}"
    return f"{config['algo']} W={config['workers']} E={config['envs_per_worker']}"


def total_envs(config: dict) -> int:
    """Environments stepped in parallel: N on the sync driver, W * E for asynchronous runs."""
    if is_sync(config):
        return int(config["num_envs"])
    return int(config["workers"]) * int(config["envs_per_worker"])


def learning_options(config: dict) -> dict:
    """The options of a config that may change what a run learns (all but
    ``POOLABLE_FIELDS``); lists, as JSON writes tuples, made tuples so they compare."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
            if k not in POOLABLE_FIELDS}


def differing_options(configs: Sequence[dict]) -> list[str]:
    """The options (``learning_options``) whose values are not the same in all ``configs``, in
    the order config.json lists them; an option a config lacks counts as None."""
    options = [learning_options(c) for c in configs]
    keys = list(dict.fromkeys(k for o in options for k in o))
    return [k for k in keys if len({repr(o.get(k)) for o in options}) > 1]


def option_text(key: str, value) -> str:
    """``key=value``, short: floats as Python writes them (0.001, 1e-05; two floats never
    print alike), tuples joined by commas, None as auto."""
    if value is None:
        text = "auto"
    elif isinstance(value, (tuple, list)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return f"{key}={text}"


def default_labels(configs: Sequence[dict]) -> list[str]:
    """One label per config: its ``method_label``, plus ``key=value`` for every option that
    differs among the configs sharing that method label. Equal configs (apart from
    ``POOLABLE_FIELDS``) get equal labels; configs that differ get different ones."""
    by_method = defaultdict(list)
    for i, c in enumerate(configs):
        by_method[method_label(c)].append(i)
    labels = [""] * len(configs)
    for method, idx in by_method.items():
        keys = differing_options([configs[i] for i in idx])
        for i in idx:
            opts = learning_options(configs[i])
            labels[i] = " ".join([method] + [option_text(k, opts.get(k)) for k in keys])
    return labels


def check_pooling(names: Sequence[str], configs: Sequence[dict], labels: Sequence[str],
                  seeds: Sequence[Sequence[int]]) -> None:
    """ValueError unless the runs that share a label may be pooled: their configs equal
    apart from ``POOLABLE_FIELDS``, and no seed in two of them. ``names[i]`` (the run
    directory), ``configs[i]``, ``labels[i]`` and ``seeds[i]`` describe run i."""
    runs = defaultdict(list)
    for i, label in enumerate(labels):
        runs[label].append(i)
    for label, idx in runs.items():
        keys = differing_options([configs[i] for i in idx])
        if keys:
            raise ValueError(
                f"label {label!r} names runs whose configs differ in {', '.join(keys)} "
                f"({', '.join(names[i] for i in idx)}); runs share a label only when they "
                f"differ in nothing but seeds and output options: give them different labels")
        first: dict[int, str] = {}
        for i in idx:
            for seed in seeds[i]:
                if seed in first:
                    raise ValueError(
                        f"seed {seed} is in both {first[seed]} and {names[i]}, "
                        f"pooled as {label!r}; a seed must count once (drop one of the runs, "
                        f"or label them apart)")
                first[seed] = names[i]
