"""NumpyLoader: batching, epoch-seeded shuffling, exact mid-epoch resume, host sharding."""

import numpy as np
import pytest

from jax_trainer.datasets import NumpyLoader, SupervisedBatch


def _arrays(n=10):
    return SupervisedBatch(np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32), np.arange(n))


def _targets(batches):
    return [b.target.tolist() for b in batches]


def test_len_and_drop_last():
    keep = NumpyLoader(_arrays(10), 4, drop_last=False)
    drop = NumpyLoader(_arrays(10), 4, drop_last=True)
    assert len(keep) == 3 and len(drop) == 2
    assert _targets(keep) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _targets(drop) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    batch = next(iter(keep))
    assert isinstance(batch, SupervisedBatch) and batch.size == 4 and batch.input.shape == (4, 3)
    np.testing.assert_array_equal(batch.input[:, 0], batch.target)


def test_shuffle_is_a_function_of_seed_and_epoch():
    a = NumpyLoader(_arrays(50), 5, shuffle=True, seed=3)
    epoch0, epoch1 = _targets(a), _targets(a)  # finishing an epoch advances to the next
    assert epoch0 != epoch1
    assert sorted(sum(epoch0, [])) == list(range(50))
    b = NumpyLoader(_arrays(50), 5, shuffle=True, seed=3)
    b.set_epoch(1)
    assert _targets(b) == epoch1
    b.set_epoch(0)
    assert _targets(b) == epoch0
    c = NumpyLoader(_arrays(50), 5, shuffle=True, seed=4)
    assert _targets(c) != epoch0


def test_state_dict_tracks_consumed_batches():
    loader = NumpyLoader(_arrays(10), 3, shuffle=True, drop_last=True)
    it = iter(loader)
    assert loader.state_dict() == {"epoch": 0, "batch_idx": 0}
    next(it)
    assert loader.state_dict() == {"epoch": 0, "batch_idx": 1}
    next(it), next(it)
    assert loader.state_dict() == {"epoch": 1, "batch_idx": 0}  # end of epoch == start of next
    assert list(it) == []
    assert loader.epoch == 1


@pytest.mark.parametrize("stop_after", [0, 1, 3])
def test_mid_epoch_resume_yields_the_remaining_batches(stop_after):
    reference = NumpyLoader(_arrays(37), 4, shuffle=True, drop_last=True, seed=11)
    reference.set_epoch(2)
    full_epoch = _targets(reference)
    next_epoch = _targets(reference)

    interrupted = NumpyLoader(_arrays(37), 4, shuffle=True, drop_last=True, seed=11)
    interrupted.set_epoch(2)
    it = iter(interrupted)
    seen = [next(it).target.tolist() for _ in range(stop_after)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batch_idx": stop_after}

    resumed = NumpyLoader(_arrays(37), 4, shuffle=True, drop_last=True, seed=11)
    resumed.load_state_dict(state)
    assert seen + _targets(resumed) == full_epoch
    assert _targets(resumed) == next_epoch

    by_index = NumpyLoader(_arrays(37), 4, shuffle=True, drop_last=True, seed=11)
    by_index.set_epoch(2)
    assert seen + _targets(by_index.iter_from(stop_after)) == full_epoch
    assert by_index.state_dict() == {"epoch": 3, "batch_idx": 0}


@pytest.mark.parametrize("epoch", [0, 5])
def test_set_epoch_restarts_the_epoch_after_a_peek(epoch):
    loader = NumpyLoader(_arrays(12), 4, shuffle=True)
    next(iter(loader))  # e.g. an example batch for model init
    loader.set_epoch(epoch)
    assert loader.state_dict() == {"epoch": epoch, "batch_idx": 0}
    assert _targets(loader) == [loader.order(epoch)[i : i + 4].tolist() for i in (0, 4, 8)]


def test_load_state_dict_rejects_out_of_range_position():
    loader = NumpyLoader(_arrays(12), 4)
    with pytest.raises(ValueError, match="batch_idx 4"):
        loader.load_state_dict({"epoch": 0, "batch_idx": 4})


def test_shards_partition_each_global_batch():
    full = NumpyLoader(_arrays(40), 8, shuffle=True, drop_last=True, seed=1)
    shards = [
        NumpyLoader(_arrays(40), 8, shuffle=True, drop_last=True, seed=1, num_shards=2, shard_index=i) for i in range(2)
    ]
    for whole, part0, part1 in zip(full, *shards):
        assert part0.size == part1.size == 4
        np.testing.assert_array_equal(np.concatenate([part0.target, part1.target]), whole.target)


def test_pytree_inputs_are_batched_leafwise():
    arrays = SupervisedBatch({"a": np.zeros((6, 2)), "b": np.arange(6)}, np.arange(6))
    batch = next(iter(NumpyLoader(arrays, 4, shuffle=True)))
    assert batch.size == 4
    np.testing.assert_array_equal(batch.input["b"], batch.target)


def test_invalid_configurations_raise():
    with pytest.raises(ValueError, match="no batch of size 16"):
        NumpyLoader(_arrays(10), 16, drop_last=True)
    assert len(NumpyLoader(_arrays(10), 16, drop_last=False)) == 1
    with pytest.raises(ValueError, match="leading dimension"):
        NumpyLoader(SupervisedBatch(np.zeros((5, 2)), np.zeros(4)), 2)
    with pytest.raises(ValueError, match="divisible"):
        NumpyLoader(_arrays(10), 5, num_shards=2)


@pytest.mark.parametrize("num_shards", [1, 2])
def test_runs_serve_the_same_batches_stacked(num_shards):
    """iter_runs(4) over 11 batches, the last short: runs of 4, 4, 2 and the short batch alone, holding exactly the
    batches iteration yields (per shard), with the cursor after each run where iteration would have it."""
    def loader():
        return NumpyLoader(_arrays(42), 4, shuffle=True, seed=2, num_shards=num_shards, shard_index=num_shards - 1)

    batches = list(loader())
    runs_loader = loader()
    runs, positions = [], []
    for n, run in runs_loader.iter_runs(4):
        runs.append((n, run))
        positions.append(runs_loader.state_dict())
    assert [n for n, _ in runs] == [4, 4, 2, 1]
    unstacked = [run if n == 1 else SupervisedBatch(run.input[i], run.target[i]) for n, run in runs for i in range(n)]
    assert len(unstacked) == len(batches) == 11
    for got, want in zip(unstacked, batches):
        np.testing.assert_array_equal(got.input, want.input)
        np.testing.assert_array_equal(got.target, want.target)
    assert positions == [{"epoch": 0, "batch_idx": i} for i in (4, 8, 10)] + [{"epoch": 1, "batch_idx": 0}]
    resumed = loader()
    resumed.load_state_dict({"epoch": 0, "batch_idx": 6})
    assert [n for n, _ in resumed.iter_runs(4)] == [4, 1]


def test_cached_order_is_read_only():
    loader = NumpyLoader(_arrays(20), 4, shuffle=True, seed=1)
    list(loader)  # computes epoch 1's order ahead
    order = loader.order(1)
    assert not order.flags.writeable
    np.testing.assert_array_equal(order, np.random.default_rng([1, 1]).permutation(20))
