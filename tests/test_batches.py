import numpy as np
import pytest

from tfseq.training.batches import make_dataset


def _epoch(dataset):
    return [tuple(part.numpy() if hasattr(part, "numpy") else {k: v.numpy() for k, v in part.items()}
                  for part in batch) for batch in dataset]


@pytest.fixture()
def arrays():
    x = np.arange(50 * 3 * 2, dtype=np.float64).reshape(50, 3, 2)  # row i starts at 6 * i
    y = {"binary": np.arange(50) % 2, "level": np.arange(50, dtype=np.float32) / 10}
    return x, y, np.arange(50, dtype=np.float32)


def test_each_epoch_gives_every_sequence_once_with_its_targets_and_weight(arrays):
    x, y, weight = arrays
    dataset = make_dataset(x, y, batch_size=16, sample_weight=weight, seed=3)
    orders = []
    for _ in range(2):
        batches = _epoch(dataset)
        assert [len(b[0]) for b in batches] == [16, 16, 16, 2]  # the short last batch is kept
        rows = np.concatenate([b[0][:, 0, 0] / 6 for b in batches]).astype(int)
        np.testing.assert_array_equal(np.sort(rows), np.arange(50))
        np.testing.assert_array_equal(np.concatenate([b[1]["binary"] for b in batches]), rows % 2)
        np.testing.assert_allclose(np.concatenate([b[1]["level"] for b in batches]), rows / 10, rtol=1e-6)
        np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), rows)
        assert batches[0][0].dtype == np.float32  # float64 trains in float32, as in Keras
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch
    assert not np.array_equal(orders[0], np.arange(50))


def test_the_same_seed_draws_the_same_orders(arrays):
    x, y, _ = arrays
    first, second = (make_dataset(x, y["binary"], batch_size=8, seed=7) for _ in range(2))
    for _ in range(2):
        np.testing.assert_array_equal(np.concatenate([b[0] for b in _epoch(first)]),
                                      np.concatenate([b[0] for b in _epoch(second)]))


def test_unshuffled_batches_keep_the_order_and_start_no_threads(arrays):
    x, y, _ = arrays
    dataset = make_dataset(x, y["binary"], batch_size=20, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in _epoch(dataset)]), y["binary"])
    options = dataset.options()
    assert options.autotune.enabled is False
    assert options.experimental_optimization.inject_prefetch is False
