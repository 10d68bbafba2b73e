"""The fused LSTM op computes what Keras' LSTM computes, and tfseq falls back when it cannot build."""

import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseq.models import fused_lstm, recurrent

# The op's own tests need a C++ compiler; without one only the fallback tests below run.
needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                    reason="no C++ compiler here: the fused op cannot be built")


def _pair(rng, units, features, **kwargs):
    ours, theirs = recurrent.LSTM(units, seed=1, **kwargs), keras.layers.LSTM(units, seed=1, **kwargs)
    ours.build((None, None, features))
    theirs.build((None, None, features))
    weights = [w + 0.3 * rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _outputs_and_gradients(layer, x, initial_state, mask=None):
    with tf.GradientTape() as tape:
        tape.watch([x, *initial_state])
        y, h, c = layer(x, initial_state=initial_state, mask=mask, training=True)
        loss = tf.reduce_sum(tf.sin(3.0 * y)) + tf.reduce_sum(0.7 * h * c)
    return [y, h, c, *tape.gradient(loss, [x, *initial_state, *layer.trainable_weights])]


def _op_types(fn, *args) -> set[str]:
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {op.type for op in graph.get_operations()}


def _mask(rng, batch, steps):
    """Valid steps with padding at the end, at the start and in the middle, and none at all."""
    mask = np.ones((batch, steps), dtype=bool)
    for row in range(batch):
        kind = row % 4
        if kind == 1:
            mask[row, rng.integers(1, steps):] = False
        elif kind == 2:
            mask[row, : rng.integers(1, steps)] = False
        elif kind == 3:
            mask[row, rng.choice(steps, size=2, replace=False)] = False
    return tf.constant(mask)


@needs_compiler
@pytest.mark.parametrize("masking", ["none", "mask", "mask_zero_output"])
@pytest.mark.parametrize("batch", [1, 37], ids=["one_thread", "batch_split_across_threads"])
@pytest.mark.parametrize("kwargs", [dict(), dict(go_backwards=True), dict(return_sequences=True),
                                    dict(return_sequences=True, go_backwards=True)],
                         ids=["last", "backwards", "sequences", "sequences_backwards"])
def test_outputs_states_and_gradients_match_keras(batch, kwargs, masking, rng):
    assert fused_lstm.ops() is not None, "the fused LSTM op did not build on this machine"
    zero = masking == "mask_zero_output"
    ours, theirs = _pair(rng, 8, 3, return_state=True, zero_output_for_mask=zero, **kwargs)
    x = tf.constant(rng.normal(size=(batch, 6, 3)).astype("float32"))
    state = [tf.constant(rng.normal(size=(batch, 8)).astype("float32")) for _ in range(2)]
    mask = None if masking == "none" else _mask(rng, batch, 6)
    got = _outputs_and_gradients(ours, x, state, mask)
    want = _outputs_and_gradients(theirs, x, state, mask)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    ops = _op_types(lambda v: _outputs_and_gradients(ours, v, state, mask), x)
    assert {"TfseqLstm", "TfseqLstmGrad"} <= ops


@needs_compiler
def test_calls_it_cannot_take_keep_the_gate_by_gate_loop(rng):
    x = tf.constant(rng.normal(size=(4, 5, 3)).astype("float32"))

    def training(layer):
        return lambda v: layer(v, training=True)

    assert "TfseqLstm" in _op_types(training(recurrent.LSTM(4)), x)
    assert "TfseqLstm" not in _op_types(training(recurrent.LSTM(4, activation="relu")), x)
    assert "TfseqLstm" not in _op_types(training(recurrent.LSTM(4, recurrent_activation="hard_sigmoid")), x)
    assert "TfseqLstm" not in _op_types(training(recurrent.LSTM(4, dtype="mixed_bfloat16")), x)


@needs_compiler
def test_inference_calls_keep_tensorflows_own_ops(rng):
    """Inference graphs are what model.export() and tf.saved_model.save write: no custom op."""
    ours, theirs = _pair(rng, 4, 3)
    x = tf.constant(rng.normal(size=(4, 5, 3)).astype("float32"))
    assert not {"TfseqLstm", "TfseqLstmGrad"} & _op_types(lambda v: ours(v, training=False), x)
    assert not {"TfseqLstm", "TfseqLstmGrad"} & _op_types(ours, x)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


@needs_compiler
def test_both_directions_of_a_built_bilstm_run_the_fused_op(rng):
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec

    model = build_model(ModelSpec(cell="lstm", units=(8,), bidirectional=True), n_features=3, steps=5, seed=0)
    x = tf.constant(rng.normal(size=(16, 5, 3)).astype("float32"))

    def gradients(v):  # a training call
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(v, training=True)["binary"])
        return tape.gradient(loss, model.trainable_weights)

    graph = tf.function(gradients).get_concrete_function(x).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("TfseqLstm") == 2 and types.count("TfseqLstmGrad") == 2


@needs_compiler
def test_library_is_cached_per_cpu_and_a_failed_build_leaves_nothing(tmp_path, monkeypatch):
    path = fused_lstm.build()
    assert path.exists() and fused_lstm.build() == path  # the second call finds it
    compiler = str(path)  # any string: the name depends on it, not on what it is
    name = fused_lstm.library_name(compiler)
    monkeypatch.setattr(fused_lstm, "_cpu_features", lambda: "flags : another cpu")
    assert fused_lstm.library_name(compiler) != name
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(RuntimeError, match="false failed"):
        fused_lstm.build(tmp_path / "cache")
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert left == [".lock", fused_lstm.library_name(shutil.which("false")) + ".failed"]  # no library, whole or partial
    # The failure is remembered: the next call does not compile again (a compiler that would now
    # succeed is not run), `retry` (tfseq build-kernels) does, and success forgets the failure.
    monkeypatch.setattr(fused_lstm, "_compile", lambda compiler, target: target.write_bytes(b"built"))
    with pytest.raises(RuntimeError, match="false failed.*an earlier build on this machine"):
        fused_lstm.build(tmp_path / "cache")
    built = fused_lstm.build(tmp_path / "cache", retry=True)
    assert built.read_bytes() == b"built" and sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".lock", built.name]


SCRIPT = textwrap.dedent("""
    import numpy as np, keras, tensorflow as tf
    from tfseq.models import fused_lstm, recurrent
    ours = recurrent.LSTM(4, seed=1); theirs = keras.layers.LSTM(4, seed=1)
    x = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
    ours.build(x.shape); theirs.build(x.shape); theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x, training=True), theirs(x), rtol=1e-5, atol=1e-6)
    print("ops:", fused_lstm.ops())
""")


@pytest.mark.parametrize("env", [{"TFSEQ_FUSED_LSTM": "0"}, {"CXX": "false"}], ids=["switched_off", "no_compiler"])
def test_lstm_falls_back_to_the_gate_loop(env, tmp_path):
    full = {**os.environ, "TFSEQ_CACHE_DIR": str(tmp_path), **env}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=full, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ops: None" in done.stdout
    warned = "fused kernel did not build or load (false failed" in done.stderr
    assert warned == ("CXX" in env)


@needs_compiler
def test_xla_compiled_calls_use_tensorflows_own_ops(rng):
    ours, theirs = _pair(rng, 4, 3)
    x = tf.constant(rng.normal(size=(5, 6, 3)).astype("float32"))
    compiled = tf.function(lambda v: ours(v, training=True), jit_compile=True)
    np.testing.assert_allclose(compiled(x), theirs(x), rtol=1e-5, atol=1e-6)
    assert "TfseqLstm" not in _op_types(compiled, x)


@needs_compiler
def test_malformed_calls_raise_errors_not_crashes():
    library = fused_lstm.ops()
    h = tf.zeros((2, 4))

    @tf.function
    def backward_with_rank_two_gates():
        return library.tfseq_lstm_grad(h, h, tf.zeros((4, 16)), tf.zeros((1, 2, 4)), tf.zeros((1, 2, 4)),
                                       tf.zeros((2, 16)), tf.zeros([0], tf.bool), h, h, h)

    with pytest.raises(ValueError, match="rank"):
        backward_with_rank_two_gates()
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask"):
        library.tfseq_lstm(tf.zeros((3, 2, 16)), tf.zeros(16), h, h, tf.zeros((4, 16)), tf.ones((2, 3), tf.bool))


@needs_compiler
def test_no_steps_return_the_initial_state_and_its_gradient():
    h0 = tf.constant(np.arange(8, dtype="float32").reshape(2, 4))
    with tf.GradientTape() as tape:
        tape.watch(h0)
        last, h_last, _ = fused_lstm.fused_lstm(tf.zeros((0, 2, 16)), tf.zeros(16), h0, tf.zeros((2, 4)),
                                                tf.zeros((4, 16)), return_sequences=False)
        loss = tf.reduce_sum(3.0 * last + h_last)
    np.testing.assert_array_equal(last, h0)
    np.testing.assert_array_equal(tape.gradient(loss, h0), np.full((2, 4), 4.0, "float32"))


@needs_compiler
def test_a_cache_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(RuntimeError, match="not private"):
        fused_lstm.build(shared)
    assert list(shared.iterdir()) == []


def test_an_unwritable_home_falls_back_to_a_private_temporary_directory(monkeypatch):
    monkeypatch.delenv("TFSEQ_CACHE_DIR", raising=False)
    folders = fused_lstm._directories(None)
    assert folders[0] == fused_lstm.cache_dir() and folders[-1].parent.name == f"tfseq-{os.getuid()}"


@needs_compiler
@pytest.mark.parametrize("tamper", ["group_writable", "symlink", "other_owner"])
def test_a_tampered_library_is_refused(tamper, tmp_path):
    cache = tmp_path / "cache"
    built = fused_lstm.build()
    cache.mkdir(mode=0o700)
    library = cache / built.name
    if tamper == "symlink":  # swapped for a link to a library elsewhere
        library.symlink_to(built)
        error = OSError
    else:
        shutil.copy2(built, library)
        error = RuntimeError
        if tamper == "group_writable":
            library.chmod(0o770)
        else:
            if os.getuid() != 0:
                pytest.skip("changing a file's owner needs root")
            os.chown(library, 65534, 65534)
    with pytest.raises(error):
        fused_lstm.load_library(library)


@needs_compiler
def test_the_library_is_loaded_through_the_file_that_was_checked(monkeypatch):
    loaded = []
    real = tf.load_op_library
    monkeypatch.setattr(tf, "load_op_library", lambda path: loaded.append(path) or real(path))
    fused_lstm.load_library(fused_lstm.build())  # (this process has loaded it before: ops() did)
    assert loaded and loaded[0].startswith("/proc/self/fd/")


NO_FCNTL = textwrap.dedent("""
    import sys
    sys.modules["fcntl"] = None  # as on native Windows
    import numpy as np
    import tfseq
    from tfseq.models import fused_lstm
    model = tfseq.build_model(tfseq.ModelSpec(cell="lstm", units=(4,)), n_features=2, steps=5, seed=0)
    x = np.random.default_rng(0).normal(size=(8, 5, 2)).astype("float32")
    model.fit(x, np.ones(8), epochs=1, verbose=0)
    print("ops:", fused_lstm.ops(), "out:", model.predict(x, verbose=0)["binary"].shape)
""")


def test_without_fcntl_tfseq_imports_and_lstm_uses_the_gate_loop(tmp_path):
    env = {**os.environ, "TFSEQ_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", NO_FCNTL], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ops: None out: (8, 1)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # nothing was built


def test_helper_threads_follow_a_users_intra_op_setting(monkeypatch):
    from tfseq import cpus

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    assert fused_lstm.threads() == 1
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert 1 <= fused_lstm.threads() <= cpus.available_cpus()


@needs_compiler
def test_keras_fit_evaluate_and_predict_trace_the_fused_op_other_graphs_do_not(rng):
    from tfseq.models.builders import build_model
    from tfseq.models.spec import ModelSpec

    model = build_model(ModelSpec(cell="lstm", units=(8,)), n_features=3, steps=5, seed=0)
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    with recurrent.fused_inference():
        assert "TfseqLstm" in _op_types(lambda v: model(v), tf.constant(x))
    assert "TfseqLstm" not in _op_types(lambda v: model(v), tf.constant(x))  # e.g. model.export()
    model.fit(x, np.ones(16), epochs=1, verbose=0)
    model.evaluate(x, np.ones(16), verbose=0)
    expected = model(x)["binary"]
    np.testing.assert_allclose(model.predict(x, verbose=0)["binary"], expected, rtol=1e-5, atol=1e-6)
    for kind in ("train", "test", "predict"):
        assert isinstance(getattr(model, f"{kind}_function"), recurrent._FusedScope), kind
