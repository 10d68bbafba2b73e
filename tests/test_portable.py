"""Models built by tfseq load and serve where tfseq is not installed.

Each check runs in a fresh interpreter in which ``import tfseq`` fails, so nothing of tfseq can
have registered a class or an op there.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tfseq.models.builders import build_model
from tfseq.models.spec import ModelSpec
from tfseq.training.fit import fit

pytestmark = pytest.mark.slow  # a fresh interpreter per check

WITHOUT_TFSEQ = 'import sys; sys.modules["tfseq"] = None  # import tfseq now fails\n'


def _run_without_tfseq(script: str, tmp_path) -> str:
    code = WITHOUT_TFSEQ + textwrap.dedent(script)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module", params=["bilstm", "gru"])  # the fused op, both directions; the gate loop
def trained(request, tmp_path_factory):
    """A small masked model of each cell, trained a little (so training graphs were traced)."""
    cell = "lstm" if request.param == "bilstm" else request.param
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 3)).astype("float32")
    x[::3, 4:] = 0.0  # padding: the masked path
    y = (x[:, :, 0].sum(axis=1) > 0).astype("float32")
    spec = ModelSpec(cell=cell, units=(4,), bidirectional=request.param == "bilstm", masking=True)
    model = build_model(spec, n_features=3, steps=6, adapt=x, seed=0)
    fit(model, x, y, epochs=1, batch_size=16, verbose=0)
    directory = tmp_path_factory.mktemp(request.param)
    np.save(directory / "x.npy", x)
    np.save(directory / "expected.npy", model.predict(x, verbose=0)["binary"])
    return model, directory


def test_keras_loads_the_saved_model_without_tfseq(trained, tmp_path):
    model, directory = trained
    model.save(directory / "model.keras")
    config = json.dumps(json.loads(__import__("zipfile").ZipFile(directory / "model.keras").read("config.json")))
    assert "tfseq" not in config  # only Keras' own classes are named in the file
    out = _run_without_tfseq(f"""
        import numpy as np, keras
        model = keras.models.load_model({str(directory / 'model.keras')!r})
        got = model.predict(np.load({str(directory / 'x.npy')!r}), verbose=0)["binary"]
        np.testing.assert_allclose(got, np.load({str(directory / 'expected.npy')!r}), rtol=1e-5, atol=1e-6)
        print("loaded", type(model.layers[2]).__name__)
    """, tmp_path)
    assert out.startswith("loaded")


@pytest.mark.parametrize("how", ["model.export", "tf.saved_model.save"])
def test_a_savedmodel_of_a_tfseq_model_serves_without_tfseq(trained, how, tmp_path):
    model, directory = trained
    target = directory / how.replace(".", "_")
    if how == "model.export":
        model.export(str(target), verbose=False)
        call = "loaded.serve(x)"
    else:
        tf.saved_model.save(model, str(target))
        call = ("loaded.signatures['serving_default'](**{next(iter("
                "loaded.signatures['serving_default'].structured_input_signature[1])): tf.constant(x)})")
    out = _run_without_tfseq(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(target)!r})
        x = np.load({str(directory / 'x.npy')!r})
        got = {call}
        got = got["binary"] if isinstance(got, dict) else got
        np.testing.assert_allclose(np.asarray(got), np.load({str(directory / 'expected.npy')!r}), rtol=1e-5, atol=1e-6)
        print("served")
    """, tmp_path)
    assert out.strip() == "served"
