"""The shared store: exactness when locked, no whole update lost when lock-free, staleness."""

import threading

import numpy as np
import optax
import pytest

from a3c_jax.core.optim import OptSpec
from a3c_jax.drivers.asynchronous.store import SharedStore

# The lock-free assertions measure how threads interleave: they need the cores to themselves,
# so ``make test`` runs this module after the parallel part of the suite, alone.
pytestmark = pytest.mark.serial

SGD1 = OptSpec(name="sgd", lr=1.0, momentum=0.0)


def hammer(store: SharedStore, workers: int, updates: int, size: int):
    """Each worker writes ``updates`` known gradients (worker w writes w + 1 everywhere)."""
    records = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def work(w):
        local = store.new_local_state()
        grad = np.full(size, w + 1, np.float32)
        barrier.wait()
        for _ in range(updates):
            snap = store.read()
            records[w].append(store.apply(grad, snap, local))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for rs in records for r in rs]


def expected_sum(workers, updates, size):
    return -np.full(size, sum(w + 1 for w in range(workers)) * updates, np.float64)


@pytest.mark.parametrize("workers", [2, 4])
def test_locked_mode_loses_nothing(workers):
    size, updates = 20_000, 200
    store = SharedStore(np.zeros(size, np.float32), SGD1, mode="locked")
    hammer(store, workers, updates, size)
    np.testing.assert_array_equal(store.params, expected_sum(workers, updates, size))
    assert store.version == workers * updates
    assert store.lost_updates()["lost_max"] == 0


@pytest.mark.parametrize("workers", [2, 4])
def test_hogwild_loses_no_whole_update(workers):
    size, updates = 20_000, 200
    store = SharedStore(np.zeros(size, np.float32), SGD1, mode="hogwild")
    recs = hammer(store, workers, updates, size)
    want = expected_sum(workers, updates, size)
    # Element-level races drop an element's increment now and then (Hogwild!: how often
    # depends on how the threads' in-place loops overlap — from none to ~2% of the increments
    # measured here); a whole update lost would shift every element by at least one gradient.
    deficit = np.abs(store.params - want)
    assert deficit.min() == 0.0
    assert deficit.mean() < 0.05 * np.abs(want).mean()
    lost = store.lost_updates()
    assert lost["updates"] == workers * updates
    assert lost["lost_min"] == 0          # some element saw every single update
    assert lost["lost_fraction"] < 0.05
    assert len(recs) == workers * updates


def test_overwrite_mode_loses_whole_updates_and_the_probe_sees_it():
    size, updates, workers = 20_000, 200, 4
    store = SharedStore(np.zeros(size, np.float32), SGD1, mode="overwrite")
    hammer(store, workers, updates, size)
    lost = store.lost_updates()
    # the naive idiom throws updates away; the probe counts them
    assert lost["lost_min"] > 0
    applied = -store.params.mean() / 2.5  # mean gradient over workers is 2.5
    assert applied < workers * updates


def test_overwrite_probe_counts_exactly_the_updates_missing_from_the_parameters():
    """Interleavings played out by hand (what a paused thread would do): the probe's count
    of lost updates equals the number of updates whose effect is missing from theta."""
    store = SharedStore(np.zeros(3, np.float32), SGD1, mode="overwrite")
    a, b = store.new_local_state(), store.new_local_state()
    ga, gb = np.full(3, 1.0, np.float32), np.full(3, 10.0, np.float32)
    sa = store.read()                       # A reads version 0
    store.apply(gb, store.read(), b)        # B reads and writes: theta = -10
    store.apply(ga, sa, a)                  # A writes from its old snapshot: B's step is gone
    np.testing.assert_array_equal(store.params, [-1.0] * 3)
    lost = store.lost_updates()
    assert lost["updates"] == 2 and lost["lost_min"] == lost["lost_max"] == 1
    store.apply(gb, store.read(), b)        # read after the last write: nothing lost
    np.testing.assert_array_equal(store.params, [-11.0] * 3)
    assert store.lost_updates()["lost_max"] == 1 and store.version == 3


def test_probe_is_advanced_in_the_same_pass_as_the_parameters():
    """hogwild and locked: one write advances every probe element by exactly one, also where
    the probe is longer than the parameters and across a protected slice."""
    for mode in ("hogwild", "locked"):
        store = SharedStore(np.zeros(10, np.float32), SGD1, mode=mode)
        store.protect(2, 5)
        store.apply(np.ones(10, np.float32), store.read(), store.new_local_state())
        np.testing.assert_array_equal(store.probe, np.ones_like(store.probe))
        np.testing.assert_array_equal(store.params[2:5], 0.0)
        np.testing.assert_array_equal(store.params[5:], -1.0)
        assert store.lost_updates()["lost_max"] == 0


def test_staleness_counts_versions_written_between_read_and_write():
    store = SharedStore(np.zeros(4, np.float32), SGD1, mode="hogwild")
    a, b, c = (store.new_local_state() for _ in range(3))
    g = np.ones(4, np.float32)
    sa = store.read()
    sb = store.read()
    store.apply(g, store.read(), c)              # version 1, staleness 0
    ra = store.apply(g, sa, a)                  # version 2: one write since sa
    rb = store.apply(g, sb, b)                  # version 3: two writes since sb
    assert (ra.version_read, ra.version_written, ra.staleness) == (0, 2, 1)
    assert (rb.version_read, rb.version_written, rb.staleness) == (0, 3, 2)


@pytest.mark.parametrize("mode", ["hogwild", "locked"])
def test_staleness_is_consistent_under_concurrency(mode):
    store = SharedStore(np.zeros(5_000, np.float32), SGD1, mode=mode)
    recs = hammer(store, 3, 300, 5_000)
    written = sorted(r.version_written for r in recs)
    assert written == list(range(1, 901))       # every write got its own version
    for r in recs:
        assert 0 <= r.version_read < r.version_written
        assert r.staleness == r.version_written - 1 - r.version_read


def test_snapshot_is_a_copy():
    store = SharedStore(np.arange(8, dtype=np.float32), SGD1)
    snap = store.read()
    before = snap.params.copy()
    store.apply(np.ones(8, np.float32), snap, store.new_local_state())
    np.testing.assert_array_equal(snap.params, before)
    assert not np.shares_memory(snap.params, store.params)


def test_snapshot_copy_survives_conversion_to_jax():
    import jax.numpy as jnp

    store = SharedStore(np.arange(8, dtype=np.float32), SGD1)
    as_jax = jnp.asarray(store.read().params)
    store.apply(np.ones(8, np.float32), store.read(), store.new_local_state())
    np.testing.assert_array_equal(np.asarray(as_jax), np.arange(8, dtype=np.float32))


@pytest.mark.parametrize("name", ["rmsprop", "rmsprop_local", "sgd"])
def test_in_place_optimiser_matches_optax(name):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=50).astype(np.float32)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(5)]
    spec = OptSpec(name=name, lr=0.01, decay=0.99, eps=1e-5, momentum=0.9)
    store = SharedStore(p0, spec, mode="locked")
    local = store.new_local_state()
    for g in grads:
        store.apply(g, store.read(), local)
    if name == "sgd":
        opt = optax.sgd(0.01, momentum=0.9)
    else:
        opt = optax.rmsprop(0.01, decay=0.99, eps=1e-5, eps_in_sqrt=True)
    p, state = p0.copy(), opt.init(p0)
    for g in grads:
        upd, state = opt.update(g, state, p)
        p = optax.apply_updates(p, upd)
    np.testing.assert_allclose(store.params, p, rtol=1e-5, atol=1e-6)


def test_shared_rmsprop_statistics_are_shared_and_local_ones_are_not():
    g = np.ones(3, np.float32)
    shared = SharedStore(np.zeros(3, np.float32), OptSpec(name="rmsprop", lr=0.1))
    for _ in range(2):
        shared.apply(g, shared.read(), shared.new_local_state())
    np.testing.assert_allclose(shared.rms, 1 - 0.99 ** 2, rtol=1e-5)
    local = SharedStore(np.zeros(3, np.float32), OptSpec(name="rmsprop_local", lr=0.1))
    a, b = local.new_local_state(), local.new_local_state()
    local.apply(g, local.read(), a)
    local.apply(g, local.read(), b)
    assert local.rms is None
    np.testing.assert_allclose(a.buf, 0.01, rtol=1e-5)
    np.testing.assert_allclose(b.buf, 0.01, rtol=1e-5)


def test_claims_never_overshoot_the_budget_by_more_than_one_segment():
    store = SharedStore(np.zeros(2, np.float32), SGD1)
    budget, n = 1000, 7
    claims = []

    def work():
        while (c := store.claim_steps(n, budget)) is not None:
            claims.append(c)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget <= store.T < budget + n
    assert sorted(b for b, _ in claims) == list(range(0, store.T, n))


def test_learning_rate_anneals_with_T():
    spec = OptSpec(lr=1.0, anneal_steps=100)
    assert spec.lr_at(0) == 1.0 and spec.lr_at(50) == 0.5 and spec.lr_at(200) == 0.0


def test_bad_mode_rejected():
    with pytest.raises(ValueError, match="store_mode"):
        SharedStore(np.zeros(2, np.float32), SGD1, mode="fast")
