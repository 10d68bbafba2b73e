import keras
import numpy as np
import pytest

from tfseq.models.builders import build_model, normalization_stats
from tfseq.models.io import load_model
from tfseq.models.spec import HeadSpec, ModelSpec
from tfseq.training.fit import fit

CELLS = ("simple_rnn", "lstm", "gru")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _recurrent_params(cell: str, units: int, inputs: int) -> int:
    per_gate = units * (units + inputs) + units
    return {"simple_rnn": per_gate, "lstm": 4 * per_gate, "gru": 3 * per_gate + 3 * units}[cell]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_parameter_counts_match_the_formulas(cell, bidirectional):
    spec = ModelSpec(cell=cell, units=(128, 8), bidirectional=bidirectional, precision="float32")
    model = build_model(spec, n_features=15, steps=20)
    k = 2 if bidirectional else 1
    first = model.get_layer("bidirectional_0" if bidirectional else f"{cell}_0")
    second = model.get_layer("bidirectional_1" if bidirectional else f"{cell}_1")
    assert first.count_params() == k * _recurrent_params(cell, 128, 15)
    assert second.count_params() == k * _recurrent_params(cell, 8, k * 128)
    assert model.get_layer("binary").count_params() == k * 8 + 1


def test_lstm_128_on_15_features_has_the_study_count():
    model = build_model(ModelSpec(cell="lstm", units=(128,), precision="float32"), n_features=15, steps=20)
    assert model.get_layer("lstm_0").count_params() == 4 * (128 * (128 + 15) + 128) == 73728


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_wrapper_and_precision_trains_saves_and_reloads(
    cell, bidirectional, precision, tiny_data, tmp_path
):
    x, y = tiny_data.x[:64, :6], tiny_data.y[:64]
    spec = ModelSpec(cell=cell, units=(4,), bidirectional=bidirectional, precision=precision)
    model = build_model(spec, n_features=15, steps=6, adapt=x, seed=1)
    history = fit(model, x, y, epochs=1, batch_size=32, verbose=0, seed=1)
    assert np.isfinite(history.history["loss"][0])
    expected = model.predict(x[:8], verbose=0)["binary"]
    assert expected.dtype == np.float32  # the head stays float32 under mixed precision
    assert ((expected >= 0) & (expected <= 1)).all()
    path = tmp_path / "m.keras"
    model.save(path)
    again = load_model(path)
    np.testing.assert_allclose(again.predict(x[:8], verbose=0)["binary"], expected, atol=1e-6)


def test_precision_policy_applies_to_recurrent_layers_and_not_heads():
    spec = ModelSpec(cell="gru", units=(4,), precision="mixed_bfloat16")
    model = build_model(spec, n_features=3, steps=5)
    assert model.get_layer("gru_0").compute_dtype == "bfloat16"
    assert model.get_layer("normalization").compute_dtype == "float32"
    assert model.get_layer("binary").compute_dtype == "float32"


def test_mixed_float16_uses_loss_scaling():
    model = build_model(ModelSpec(units=(4,), precision="mixed_float16"), n_features=3, steps=5)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
def test_masking_ignores_padding_for_every_pooling(pooling, rng):
    spec = ModelSpec(cell="gru", units=(6,), masking=True, pooling=pooling, precision="float32")
    x = rng.normal(5.0, 1.0, (4, 7, 3)).astype("float32")
    model = build_model(spec, n_features=3, adapt=x, seed=0)
    short = x[:, :4]
    padded = np.concatenate([short, np.zeros((4, 3, 3), "float32")], axis=1)
    np.testing.assert_allclose(
        model.predict(padded, verbose=0)["binary"], model.predict(short, verbose=0)["binary"], atol=1e-5
    )


def test_normalization_is_inside_the_model_and_skips_padding(rng):
    x = rng.normal([1.0, 250.0, -80.0], [0.01, 2.0, 5.0], (50, 6, 3)).astype("float32")
    x[:, 4:] = 0.0  # padding
    mean, var = normalization_stats(x, masking=True)
    np.testing.assert_allclose(mean, x[:, :4].reshape(-1, 3).mean(0), rtol=1e-5)
    model = build_model(ModelSpec(masking=True, precision="float32"), n_features=3, adapt=x)
    layer = model.get_layer("normalization")
    out = keras.Model(model.inputs, layer.output)(x[:, :4]).numpy()
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.reshape(-1, 3).std(0), 1.0, atol=1e-3)


def test_several_heads_train_together(tiny_data):
    x, y = tiny_data.x[:64], tiny_data.y[:64]
    ttf = np.where(y == 1, 5.0, 20.0).astype("float32")
    spec = ModelSpec(
        units=(4,), precision="float32",
        heads=(HeadSpec("binary", name="fail"), HeadSpec("regression", name="ttf"),
               HeadSpec("forecast", name="next", horizon=3), HeadSpec("multiclass", name="bin", num_classes=3)),
    )
    model = build_model(spec, n_features=15, adapt=x, seed=0)
    targets = {"fail": y, "ttf": ttf, "next": x[:, -3:, 0], "bin": (y * 2).astype("int32")}
    history = fit(model, x, targets, epochs=1, verbose=0, seed=0)
    assert {"fail_auc", "ttf_mae", "next_rmse", "bin_accuracy"} <= set(history.history)
    out = model.predict(x[:2], verbose=0)
    assert out["next"].shape == (2, 3) and out["bin"].shape == (2, 3)
    np.testing.assert_allclose(out["bin"].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"n_features": 0}, {"n_features": 3, "steps": 0}])
def test_invalid_build_arguments(kwargs):
    from tfseq.errors import InputError

    with pytest.raises(InputError, match="argument"):
        build_model(ModelSpec(), **kwargs)


def test_safe_mode_refuses_a_lambda_model(tmp_path):
    from tfseq.errors import InputError

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(InputError, match="Lambda"):
        load_model(tmp_path / "lambda.keras")


def test_regression_heads_answer_in_the_units_of_their_targets(rng):
    """A ~75 C target: the head learns standardised values, the model outputs degrees."""
    from tfseq.models.spec import HeadSpec

    x = rng.normal(size=(64, 5, 3)).astype("float32")
    y = (75.0 + 5.0 * rng.normal(size=(64, 2))).astype("float32")
    spec = ModelSpec(cell="gru", units=(4,), heads=(HeadSpec("forecast", horizon=2),))
    scaled = build_model(spec, n_features=3, steps=5, adapt=x, targets=y, seed=0)
    plain = build_model(spec, n_features=3, steps=5, adapt=x, seed=0)
    assert scaled.output_names == plain.output_names == ["forecast"]
    p = scaled.predict(x, verbose=0)["forecast"]
    assert abs(p.mean() - 75.0) < 5.0 and abs(plain.predict(x, verbose=0)["forecast"].mean()) < 5.0
    rescaling = scaled.get_layer("forecast")
    assert rescaling.scale == pytest.approx(float(y.std())) and rescaling.offset == pytest.approx(float(y.mean()))
