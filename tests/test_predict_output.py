"""tfseq predict's output path: blocks of whole sequences, the CSV, and no TensorFlow for ONNX / TF Lite.

The artifact is a hand-built ONNX graph (p = sigmoid(mean of the sequence)) beside a RUN's
contract.json, so the tests need neither TensorFlow nor a trained model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tfseq.run import DataContract
from tfseq.workflows.predict import _check_contiguous, _Interleaved, needs_tensorflow, predict_file

FEATURES = ["vdd", "idd", "freq"]
STEPS = 4


def _mean_sigmoid_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["sequence"], ["mean"], axes=[1, 2], keepdims=0),
         helper.make_node("Unsqueeze", ["mean", "axis"], ["column"]),
         helper.make_node("Sigmoid", ["column"], ["binary"])],
        "mean_sigmoid",
        [helper.make_tensor_value_info("sequence", TensorProto.FLOAT, ["n", STEPS, len(FEATURES)])],
        [helper.make_tensor_value_info("binary", TensorProto.FLOAT, ["n", 1])],
        initializer=[helper.make_tensor("axis", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    contract = DataContract(feature_names=FEATURES, steps=STEPS, task="binary", class_names=["pass", "fail"],
                            id_col="device", time_col="cycle")
    (folder / "contract.json").write_text(json.dumps(contract.get_config()))
    _mean_sigmoid_onnx(folder / "model.onnx")
    return folder / "model.onnx"


def _long(devices: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(devices, STEPS, len(FEATURES))).astype(np.float32)
    frame = pd.DataFrame(x.reshape(-1, len(FEATURES)), columns=FEATURES)
    frame.insert(0, "cycle", np.tile(np.arange(1, STEPS + 1), devices))
    frame.insert(0, "device", np.repeat([f"D{i:04d}" for i in range(devices)], STEPS))
    return frame


def test_only_keras_and_savedmodel_artifacts_need_tensorflow(tmp_path: Path) -> None:
    assert not needs_tensorflow(tmp_path / "lstm-dynamic.tflite")
    assert not needs_tensorflow(tmp_path / "LSTM.ONNX")
    assert needs_tensorflow(tmp_path / "run")
    assert needs_tensorflow(tmp_path / "run" / "model.keras")


def test_cli_predicts_an_onnx_file_without_starting_tensorflow(artifact: Path, tmp_path: Path) -> None:
    frame = _long(30)
    frame.to_csv(tmp_path / "devices.csv", index=False)
    out = tmp_path / "pred.csv"
    code = ("import sys; from tfseq.cli.main import main; status = main(sys.argv[1:]); "
            "print('tensorflow' in sys.modules, 'sklearn' in sys.modules); sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "predict", str(artifact), str(tmp_path / "devices.csv"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"  # neither TensorFlow nor scikit-learn imported
    written = pd.read_csv(out)
    expected = 1 / (1 + np.exp(-frame.groupby("device", sort=False)[FEATURES].mean().mean(axis=1).to_numpy()))
    assert list(written.columns) == ["device", "predicted", "p_pass", "p_fail"]
    np.testing.assert_allclose(written["p_fail"], expected, rtol=1e-5)
    assert list(written["predicted"]) == ["fail" if p >= 0.5 else "pass" for p in written["p_fail"]]


@pytest.mark.parametrize("block_rows", [3, 4, 37, 10_000])
def test_blocks_of_any_size_write_the_same_bytes(artifact: Path, tmp_path: Path, block_rows: int) -> None:
    frame = _long(25, seed=1)
    frame.to_parquet(tmp_path / "devices.parquet")
    whole = predict_file(artifact, tmp_path / "devices.parquet", tmp_path / "whole.csv", block_rows=1_000_000)
    blocks = predict_file(artifact, tmp_path / "devices.parquet", tmp_path / "blocks.csv", block_rows=block_rows)
    assert whole.sequences == blocks.sequences == 25
    assert (tmp_path / "blocks.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_interleaved_rows_are_read_whole_with_the_same_answers(artifact: Path, tmp_path: Path) -> None:
    frame = _long(6, seed=2)
    frame.to_csv(tmp_path / "sorted.csv", index=False)
    frame.sort_values(["cycle", "device"]).to_csv(tmp_path / "interleaved.csv", index=False)
    predict_file(artifact, tmp_path / "sorted.csv", tmp_path / "a.csv", block_rows=5)
    predict_file(artifact, tmp_path / "interleaved.csv", tmp_path / "b.csv", block_rows=5)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.parametrize(("ids", "done", "contiguous"), [
    (["a", "a", "b", "c", "c"], set(), True),
    (["a"], set(), True),
    (["a", "b", "a"], set(), False),  # a comes back after b
    (["a", "a", "c", "b", "c"], set(), False),
    (["b", "b", "c"], {"a", "b"}, False),  # b was in an earlier block
])
def test_contiguity_check(ids: list, done: set, contiguous: bool) -> None:
    block = pd.DataFrame({"device": ids, "v": range(len(ids))})
    if contiguous:
        assert _check_contiguous(block, "device", done) is block
        assert set(block["device"]) <= done
    else:
        with pytest.raises(_Interleaved):
            _check_contiguous(block, "device", done)
