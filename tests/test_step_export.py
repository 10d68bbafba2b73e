"""Step artifacts of streaming models and the streaming runner over them.

One streaming LSTM RUN (with an adaptive-test policy) is exported once in every format and
TF Lite mode; each step artifact was verified by the exporter cycle by cycle in its own runtime,
and is reloaded here through :func:`tfseq.export.streaming.open_step_runner` with devices
interleaved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfseq.errors import InputError
from tfseq.export import QUANTIZATIONS
from tfseq.export.step import StepGraph, state_layout, step_filename
from tfseq.export.streaming import open_step_runner
from tfseq.models.builders import build_model
from tfseq.models.policy import FAIL, FULL_TEST, AdaptiveTestPolicy
from tfseq.models.spec import ModelSpec
from tfseq.run import DataContract, save_run
from tfseq.training.fit import fit
from tfseq.workflows.export import export_run

STEPS = 5
POLICY = AdaptiveTestPolicy(t_fail=(None, 0.6, 0.6, 0.6, None), t_pass=(None, None, 0.05, 0.05, None))


def _trained(tiny_data, cell: str, **spec_kwargs):
    x = tiny_data.x[:, :STEPS]
    # trained enough that few answers sit at the threshold, where any rounding flips a class
    spec = ModelSpec(cell=cell, units=(8,), streaming=True, learning_rate=0.02, **spec_kwargs)
    model = build_model(spec, n_features=x.shape[-1], steps=STEPS, adapt=x[:200], seed=0)
    fit(model, x[:200], tiny_data.y[:200], epochs=10, batch_size=32, verbose=0)
    return spec, model, x


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    """A streaming LSTM RUN with a policy, exported in every format and mode through export_run."""
    spec, model, x = _trained(tiny_data, "lstm")
    root = tmp_path_factory.mktemp("step")
    contract = DataContract(feature_names=list(tiny_data.feature_names), steps=STEPS,
                            class_names=["pass", "fail"], head="binary")
    run = root / "run"
    save_run(run, model, spec, contract, export_sample=(x[200:], tiny_data.y[200:], x[:200]))
    (run / "policy.json").write_text(json.dumps(POLICY.to_dict()))
    manifest = export_run(run, root / "export", formats="all", quantize="all", name="m", allow_degraded=True)
    return model, manifest, root / "export", x[200:]


def _step_records(manifest):
    return [a for a in manifest["artifacts"] if "step" in a]


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
def test_every_step_artifact_is_written_verified_and_described(exported):
    model, manifest, out, _ = exported
    records = _step_records(manifest)
    paths = {a["path"] for a in records}
    assert paths == {"savedmodel/m/1", "m-step.onnx", *(step_filename("m", mode) for mode in QUANTIZATIONS)}
    layout = [{"layer": "lstm_0", "cell": "lstm", "units": 8, "kind": k, "input": f"state_0_{k}",
               "output": f"new_state_0_{k}"} for k in ("h", "c")]
    assert manifest["state_layout"] == layout
    assert manifest["policy"]["t_fail"] == list(POLICY.t_fail)
    request = json.loads((out / "savedmodel" / "m" / "sample_request_step.json").read_text())
    assert request["signature_name"] == "step" and request["instances"][0]["state_0_c"] == [0.0] * 8
    for record in records:
        step = record["step"]
        assert step["state"] == layout and step["initial_state"] == "zeros"
        assert [i["name"] for i in step["inputs"]] == ["features", "state_0_h", "state_0_c"]
        assert [o["name"] for o in step["outputs"]] == ["binary", "new_state_0_h", "new_state_0_c"]
        figures = record["verification"]
        assert figures["sequences"] == len(exported[3])
        assert figures["step_batch1_latency_us"] > 0
        if record["quantization"] in (None, "none"):  # float32: every step of every device within 1e-5
            assert figures["max_abs_diff"] <= 1e-5, record["path"]
        if record["quantization"] == "int8":  # 500 answers of a tiny model; LSTM-128: bench_step.py
            assert figures["class_agreement"] >= 0.95, record["path"]
        else:
            assert figures["class_agreement"] >= 0.99, record["path"]
            assert record["passed"], record["failures"]
    # the full-sequence artifacts of the same streaming model answer at every step too
    full = [a for a in manifest["artifacts"] if "step" not in a]
    assert len(full) == 6
    for record in full:
        assert record["verification"]["class_agreement"] >= 0.95, record["path"]
        if record["quantization"] in (None, "none"):
            assert record["verification"]["max_abs_diff"] <= 1e-4, record["path"]


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
def test_litert_step_artifact_runs_in_litert_without_tensorflow(exported):
    _, manifest, out, _ = exported
    litert = [a for a in _step_records(manifest) if a["format"] == "tflite"]
    assert {a["runtime"] for a in litert} == {"ai_edge_litert (subprocess, TensorFlow not importable)"}
    from ai_edge_litert.interpreter import Interpreter

    for record in litert:  # builtin ops only: no Flex (TensorFlow) op in any file
        interpreter = Interpreter(model_path=str(out / record["path"]))
        ops = {op["op_name"] for op in interpreter._get_ops_details()}  # noqa: SLF001
        assert not any("Flex" in op or op == "CUSTOM" for op in ops), ops
        assert "WHILE" not in ops  # one step: no loop


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
@pytest.mark.parametrize("artifact", ["m-step.tflite", "m-step-dynamic.tflite", "m-step.onnx", "savedmodel/m"])
def test_runner_with_devices_interleaved_matches_keras_per_step(exported, artifact):
    model, manifest, out, x = exported
    runner = open_step_runner(out / artifact)
    assert runner.policy == AdaptiveTestPolicy.from_dict(manifest["policy"]) and runner.head == "binary"
    devices = x[:6]
    expected = model.predict(devices, verbose=0)["binary"]  # [devices, steps, 1]
    got = np.zeros_like(expected)
    decisions: dict[int, list[str | None]] = {d: [] for d in range(len(devices))}
    for t in range(STEPS):  # every device's cycle t, interleaved in a shuffled order
        for d in np.random.default_rng(t).permutation(len(devices)):
            p, decision = runner.update(int(d), devices[d, t])
            got[d, t] = p
            decisions[int(d)].append(decision)
    tol = 1e-5 if "dynamic" not in artifact else 1e-2
    np.testing.assert_allclose(got, expected, atol=tol)
    assert all(runner.steps_seen(d) == STEPS for d in range(len(devices)))
    for d in range(len(devices)):  # the policy decides as it would replayed on the whole sequence
        decision, decided_at, _ = POLICY.replay(expected[d:d + 1, :, 0])
        assert decisions[d][decided_at[0] - 1] == decision[0]
        assert decisions[d][-1] in (FAIL, "pass", FULL_TEST) or decided_at[0] < STEPS
    # one device alone gives the same answers as interleaved
    runner.reset(0)
    assert runner.steps_seen(0) == 0 and 0 not in runner.devices
    alone = [runner.update(0, devices[0, t])[0] for t in range(STEPS)]
    np.testing.assert_allclose(np.stack(alone), got[0], atol=1e-6)


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
def test_runner_refuses_bad_input_in_one_line(exported):
    _, _, out, x = exported
    runner = open_step_runner(out / "m-step.tflite")
    with pytest.raises(InputError, match=r"x_t of shape \(14,\), expected \(15,\)"):
        runner.update("a", x[0, 0, :14])
    with pytest.raises(InputError, match=r"state state_0_c of shape \(1, 4\), expected \(1, 8\)"):
        runner.step(x[0, 0], {"state_0_h": np.zeros((1, 8)), "state_0_c": np.zeros((1, 4))})
    with pytest.raises(InputError, match="expected \\['state_0_c', 'state_0_h'\\]"):
        runner.step(x[0, 0], {"state_0_h": np.zeros((1, 8))})
    with pytest.raises(InputError, match="not a step artifact"):
        open_step_runner(out / "m.tflite")
    assert runner.devices == []  # nothing was kept of the refused calls


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
def test_litert_runner_works_where_tensorflow_cannot_be_imported(exported, tmp_path):
    model, _, out, x = exported
    np.save(tmp_path / "x.npy", x[:3])
    np.save(tmp_path / "expected.npy", model.predict(x[:3], verbose=0)["binary"])
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ImportError(name + " is blocked")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from tfseq.export.streaming import open_step_runner
        runner = open_step_runner({str(out / 'm-step.tflite')!r})
        x, expected = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'expected.npy')!r})
        got = [[runner.update(d, x[d, t])[0] for d in range(3)] for t in range(x.shape[1])]
        np.testing.assert_allclose(np.transpose(np.array(got), (1, 0, 2)), expected, atol=1e-5)
        assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_step_graph_of_every_cell_matches_keras(tiny_data, cell):
    _, model, x = _trained(tiny_data, cell, layer_norm=True, dense_units=4)
    graph = StepGraph(model)
    assert [s.input for s in state_layout(model)] == ["state_0_h"]
    got, states = graph.replay(x[:20])
    np.testing.assert_allclose(got["binary"], model.predict(x[:20], verbose=0)["binary"], atol=1e-5)
    assert states[0].shape == (20, STEPS, 8) and not states[0][:, 0].any()  # zeros start a device


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_step_artifacts_of_gru_and_simple_rnn_verify(tiny_data, cell, tmp_path):
    from tfseq.export import export_model

    spec, model, x = _trained(tiny_data, cell)
    contract = DataContract(feature_names=list(tiny_data.feature_names), steps=STEPS,
                            class_names=["pass", "fail"], head="binary")
    manifest = export_model(model, contract, tmp_path / "e", name="m", holdout=(x[200:], tiny_data.y[200:]),
                            formats=("tflite", "onnx"), quantize=("none", "int8"), representative=x[:200],
                            allow_degraded=True, spec=spec)
    for record in _step_records(manifest):
        assert record["verification"]["class_agreement"] >= 0.95, record["path"]
        if record["quantization"] in (None, "none"):
            assert record["verification"]["max_abs_diff"] <= 1e-5, record["path"]


def test_a_model_that_is_not_streaming_has_no_step_graph(tiny_data):
    model = build_model(ModelSpec(cell="lstm", units=(4,)), n_features=15, steps=STEPS, seed=0)
    with pytest.raises(InputError, match="expected a streaming model"):
        StepGraph(model)


@pytest.mark.slow  # exports every format and mode (CI's slow tier; make test-slow)
@pytest.mark.parametrize("artifact", ["m-step-dynamic.tflite", "m-step.onnx"])
def test_load_runner_replays_whole_sequences_through_a_step_artifact(exported, artifact):
    from tfseq.export import load_runner

    model, _, out, x = exported
    runner = load_runner(out / artifact)
    assert runner.kind.endswith("-step") and runner.steps == STEPS
    got = runner.predict(x[:20])["binary"]
    np.testing.assert_allclose(got, model.predict(x[:20], verbose=0)["binary"], atol=1e-2)


@pytest.mark.slow  # exports and verifies step artifacts (CI's slow tier; make test-slow)
def test_masked_streaming_model_step_artifact_verifies_on_padded_devices(tiny_data, tmp_path):
    from tfseq.export import export_model

    x = tiny_data.x[:, :STEPS].copy()
    lengths = np.random.default_rng(0).integers(2, STEPS + 1, size=len(x))
    x[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0.0  # zero-padded tails
    spec = ModelSpec(cell="lstm", units=(8,), streaming=True, masking=True, learning_rate=0.02)
    model = build_model(spec, n_features=15, steps=STEPS, adapt=x[:200], seed=0)
    fit(model, x[:200], tiny_data.y[:200], epochs=3, batch_size=32, verbose=0)
    contract = DataContract(feature_names=list(tiny_data.feature_names), steps=STEPS,
                            class_names=["pass", "fail"], masking=True, head="binary")
    manifest = export_model(model, contract, tmp_path / "e", name="m", holdout=(x[200:], tiny_data.y[200:]),
                            formats="tflite", spec=spec)
    [record] = _step_records(manifest)
    assert record["passed"] and record["verification"]["max_abs_diff"] <= 1e-5
    runner = open_step_runner(tmp_path / "e" / "m-step.tflite")
    device = int(np.argmin(lengths[200:])) + 200  # the shortest device: fed its real cycles only
    got = [runner.update("d", x[device, t])[0] for t in range(lengths[device])]
    expected = model.predict(x[device:device + 1], verbose=0)["binary"][0, :lengths[device]]
    np.testing.assert_allclose(np.stack(got), expected, atol=1e-5)
