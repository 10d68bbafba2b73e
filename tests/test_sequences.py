"""One task inference rule for in-memory sequences."""

import numpy as np
import pytest

from tfseq.data.sequences import MAX_INFERRED_CLASSES, SequenceSet, infer_task, num_classes
from tfseq.errors import InputError


def _set(y, class_names=None):
    y = np.asarray(y)
    return SequenceSet(x=np.zeros((len(y), 3, 2)), y=y, ids=np.arange(len(y)), feature_names=["a", "b"],
                       class_names=class_names)


@pytest.mark.parametrize("y, class_names, task, classes", [
    ([0, 1, 1, 0], None, "binary", 2),
    ([0, 1, 2, 2], None, "multiclass", 3),  # integer labels without names: three classes, not binary
    ([0, 1, 0, 1], ["good", "bad", "ugly"], "multiclass", 3),
    ([0, 1, 0, 1], ["pass", "fail"], "binary", 2),
    (np.arange(MAX_INFERRED_CLASSES + 1), None, "regression", None),
    ([0.5, 1.5, 2.0, 3.0], None, "regression", None),
])
def test_infer_task(y, class_names, task, classes):
    data = _set(y, class_names)
    assert infer_task(data) == task
    if classes is not None:
        assert num_classes(data) == classes


def test_forecast_windows_and_missing_targets():
    windows = SequenceSet(x=np.zeros((2, 3, 1)), y=np.zeros((2, 4), "float32"), ids=np.arange(2), feature_names=["a"])
    assert infer_task(windows) == "forecast"
    with pytest.raises(InputError, match="without targets"):
        infer_task(SequenceSet(x=np.zeros((2, 3, 1)), y=None, ids=np.arange(2), feature_names=["a"]))
