"""budget.matched_pair: A3C with W workers x E envs against A2C with W*E envs, from one base
config that nothing else changes."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from a3c_jax.config import pairs as budget
from a3c_jax.config.pairs import PAIR, matched_pair
from a3c_jax.config.schema import FIELD_NAMES, Config

SHAPE_FIELDS = {"algo", "num_envs", "workers", "envs_per_worker", "vmap_seeds", "out"}


def base() -> Config:
    return Config(env="CartPole-v1", total_steps=30_000, seeds=(3, 4), t_max=7, lr=1e-3,
                  lr_anneal=False, optimizer="sgd", hidden=(32,), store_mode="locked",
                  gamma=0.98, progress=False, out="runs/base")


@pytest.mark.parametrize("workers,envs_per_worker", [(1, 1), (2, 1), (4, 2), (3, 5)])
def test_shapes_of_parallelism(workers, envs_per_worker):
    pair = matched_pair(base(), workers, envs_per_worker)
    assert tuple(pair) == PAIR
    a3c, a2c = pair["a3c"], pair["a2c"]
    assert (a3c.algo, a3c.workers, a3c.envs_per_worker) == ("a3c", workers, envs_per_worker)
    assert (a2c.algo, a2c.num_envs, a2c.vmap_seeds) == ("a2c", workers * envs_per_worker, False)
    assert a3c.workers * a3c.envs_per_worker == a2c.num_envs


def test_everything_else_is_the_base_config():
    b = base()
    pair = matched_pair(b, 4, 2, out="runs/x")
    for cfg in pair.values():
        changed = {name for name in FIELD_NAMES if getattr(cfg, name) != getattr(b, name)}
        assert changed <= SHAPE_FIELDS, changed
    a3c, a2c = pair["a3c"].to_dict(), pair["a2c"].to_dict()
    assert {k for k in a3c if a3c[k] != a2c[k]} <= SHAPE_FIELDS
    for name in ("t_max", "total_steps", "seeds", "lr", "lr_anneal", "optimizer", "hidden",
                 "gamma"):
        assert a3c[name] == a2c[name] == getattr(b, name), name


def test_out_directories():
    b = base()
    pair = matched_pair(b, 2, 1, out=Path("runs") / "cmp")
    assert pair["a3c"].out == str(Path("runs/cmp/a3c"))
    assert pair["a2c"].out == str(Path("runs/cmp/a2c"))
    assert matched_pair(b, 2, 1, out="runs/cmp")["a2c"].out == str(Path("runs/cmp/a2c"))
    kept = matched_pair(b, 2, 1)
    assert kept["a3c"].out == kept["a2c"].out == b.out


def test_the_pair_validates_and_the_base_is_untouched():
    b = base()
    before = b.to_dict()
    for cfg in matched_pair(b, 2, 2).values():
        cfg.validate()
    assert b.to_dict() == before
    with pytest.raises(ValueError, match="workers"):
        matched_pair(b, 0, 1)["a3c"].validate()


def test_budget_imports_only_config():
    tree = ast.parse(Path(budget.__file__).read_text())
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("a3c_jax"):
            local.add(node.module)
        elif isinstance(node, ast.Import):
            local |= {a.name for a in node.names if a.name.startswith("a3c_jax")}
    assert local == {"a3c_jax.config.schema"}


@pytest.mark.parametrize("algo", ["q1", "sarsa", "nq"])
def test_value_methods_pair_async_workers_with_their_sync_form(algo):
    """A value method's pair: W x E workers on the base backend, and the same method with
    backend sync over W*E envs (rows labelled <algo>_sync); nothing else differs."""
    b = base().replace(algo=algo, target_interval=500, eps_anneal_steps=2000)
    pair = matched_pair(b, 4, 2, out="runs/x")
    assert tuple(pair) == budget.pair_labels(algo) == (algo, f"{algo}_sync")
    asyn, sync = pair[algo], pair[f"{algo}_sync"]
    assert (asyn.algo, asyn.workers, asyn.envs_per_worker, asyn.backend) == (
        algo, 4, 2, "threads")
    assert (sync.algo, sync.backend, sync.num_envs, sync.vmap_seeds) == (algo, "sync", 8, False)
    assert asyn.is_async and sync.is_sync
    assert sync.out == str(Path("runs/x") / f"{algo}_sync")
    for cfg in pair.values():
        changed = {name for name in FIELD_NAMES if getattr(cfg, name) != getattr(b, name)}
        assert changed <= SHAPE_FIELDS | {"backend"}, changed
        cfg.validate()
    # from a sync base, the asynchronous side runs on threads
    assert matched_pair(b.replace(backend="sync"), 2, 1)[algo].backend == "threads"


def test_labels_name_their_method():
    assert budget.pair_labels("a2c") == budget.pair_labels("a3c") == PAIR
    assert budget.method_of("nq_sync") == "nq" and budget.method_of("a2c") == "a3c"
    with pytest.raises(ValueError, match="algo"):
        budget.method_of("dqn")


def test_compare_runs_any_method_on_both_sides(tmp_path, capsys):
    """compare.py --algo nq trains nq (2 workers) and nq_sync (2 envs) into one summary;
    a label outside the pair is refused before anything trains."""
    from a3c_jax.commands import compare

    rc = compare.main(["--algo", "nq", "--total-steps", "2000", "--seeds", "0",
                       "--threshold", "20", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    for label in ("nq", "nq_sync"):
        assert (tmp_path / label / "metrics.csv").exists()
    import pandas as pd

    table = pd.read_csv(tmp_path / "summary.csv")
    assert sorted(table["method"]) == ["nq W=2 E=1", "nq_sync N=2"]
    assert sorted(table["algo"]) == ["nq", "nq_sync"]
    assert compare.main(["--algo", "nq", "--algos", "a2c", "--out", str(tmp_path / "x")]) == 2
    assert "algos" in capsys.readouterr().err
