import numpy as np
import pytest

from tfseq.data.splits import split_sequences
from tfseq.data.synthetic import FEATURE_NAMES, make_semiconductor_data, to_long_frame
from tfseq.errors import InputError


def test_generator_matches_the_study_layout():
    data = make_semiconductor_data(2000, seed=1)
    assert data.x.shape == (2000, 20, 15) and data.x.dtype == np.float32
    assert data.feature_names == FEATURE_NAMES and data.feature_names[0] == "Vdd_voltage"
    assert data.y.mean() == pytest.approx(0.20)
    assert data.class_names == ["pass", "fail"]
    passing = data.x[data.y == 0]
    np.testing.assert_allclose(passing.mean(axis=(0, 1))[:2], [1.05, 250.0], rtol=1e-3)


def test_failing_devices_drift_in_the_studied_directions_and_accelerate():
    data = make_semiconductor_data(4000, seed=2)
    fail, ok = data.x[data.y == 1], data.x[data.y == 0]
    change = (fail[:, -1] - fail[:, 0]).mean(0) - (ok[:, -1] - ok[:, 0]).mean(0)
    assert change[FEATURE_NAMES.index("Idd_current")] < 0
    assert change[FEATURE_NAMES.index("Temperature")] > 0
    idd = fail[:, :, 1].mean(0)
    assert (idd[10] - idd[19]) > 2 * (idd[0] - idd[9])  # quadratic: the second half drifts more


def test_same_seed_same_data_and_the_demo_size():
    a = make_semiconductor_data(500, seed=5)
    np.testing.assert_array_equal(a.x, make_semiconductor_data(500, seed=5).x)
    assert not np.array_equal(a.x, make_semiconductor_data(500, seed=6).x)
    full = make_semiconductor_data(50_000, seed=0)  # its speed is measured by make bench, not here
    assert full.x.shape == (50_000, 20, 15) and full.x.dtype == np.float32 and np.isfinite(full.x).all()


@pytest.mark.parametrize("kwargs", [{"n_devices": 1}, {"n_cycles": 0}, {"fail_rate": 1.0}])
def test_generator_rejects_bad_sizes(kwargs):
    with pytest.raises(InputError, match="argument"):
        make_semiconductor_data(**{"n_devices": 100, **kwargs})


def test_long_frame_has_one_row_per_device_and_cycle(tiny_data):
    frame = to_long_frame(tiny_data)
    assert list(frame.columns[:2]) == ["device_id", "cycle"] and frame.columns[-1] == "status"
    assert len(frame) == len(tiny_data) * tiny_data.steps
    assert set(frame["status"]) == {"pass", "fail"}
    first = frame[frame["device_id"] == tiny_data.ids[0]]
    np.testing.assert_allclose(first[FEATURE_NAMES].to_numpy(), tiny_data.x[0], rtol=1e-6)


def test_split_is_stratified_by_device_64_16_20():
    data = make_semiconductor_data(1000, seed=0)
    train, val, test = split_sequences(data, seed=0)
    assert (len(train), len(val), len(test)) == (640, 160, 200)
    ids = [set(s.ids) for s in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for part in (train, val, test):
        assert part.y.mean() == pytest.approx(0.2, abs=0.01)


def test_split_rejects_bad_fractions(tiny_data):
    with pytest.raises(InputError, match="fractions"):
        split_sequences(tiny_data, (0.5, 0.5, 0.5))


def test_first_steps_is_the_early_warning_cut(tiny_data):
    early = tiny_data.first_steps(5)
    assert early.x.shape[1] == 5 and (early.lengths == 5).all()
    np.testing.assert_array_equal(early.x, tiny_data.x[:, :5])
    with pytest.raises(InputError, match="predict_at"):
        tiny_data.first_steps(0)
