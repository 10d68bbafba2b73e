import numpy as np
import pytest

from tfseq.errors import InputError
from tfseq.models.builders import STEPS_PER_EXECUTION, build_model
from tfseq.models.precision import resolve_precision
from tfseq.models.spec import ModelSpec
from tfseq.training.fit import balanced_sample_weights, fit


def _train(data, run_dir=None, seed=7, epochs=2):
    x, y = data.x[:120], data.y[:120]
    spec = ModelSpec(cell="gru", units=(6,), dropout=0.1, precision="float32")
    model = build_model(spec, n_features=15, adapt=x, seed=seed)
    history = fit(
        model, x, y, validation_data=(data.x[120:180], data.y[120:180]), epochs=epochs,
        batch_size=32, run_dir=run_dir, seed=seed, verbose=0,
    )
    return model, history


def test_same_seed_same_data_gives_the_same_metrics(tiny_data):
    _, first = _train(tiny_data)
    _, second = _train(tiny_data)
    for key in ("loss", "val_loss", "val_auc"):
        np.testing.assert_allclose(first.history[key], second.history[key], rtol=1e-6)


def test_several_batches_per_call_train_the_same_model_as_one(tiny_data):
    # one full call and a short one per epoch (32 and 28 batches of 2)
    x, y = tiny_data.x[:120], tiny_data.y[:120]
    batch = len(x) * 2 // (3 * STEPS_PER_EXECUTION)
    assert STEPS_PER_EXECUTION < len(x) / batch < 2 * STEPS_PER_EXECUTION
    weights = []
    for per_call in (STEPS_PER_EXECUTION, 1):
        model = build_model(ModelSpec(cell="lstm", units=(6,), precision="float32"), n_features=15,
                            adapt=x, seed=3)
        model.steps_per_execution = per_call
        history = fit(model, x, y, epochs=2, batch_size=batch, seed=3, verbose=0)
        weights.append(model.get_weights())
    assert STEPS_PER_EXECUTION > 1 and len(history.history["loss"]) == 2
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_training_step_is_traced_once_no_variable_is_created_inside_it(tiny_data):
    # Variables created while a tf.function traces make TensorFlow trace it a second time (about
    # 1.3 s of every default `tfseq train`): fit builds the optimizer before Keras traces the step.
    import tensorflow as tf

    x, y = tiny_data.x[:120], tiny_data.y[:120]
    model = build_model(ModelSpec(cell="lstm", units=(6,), precision="float32"), n_features=15, adapt=x, seed=3)
    created = []

    def creator(next_creator, **kwargs):
        created.append((kwargs.get("name"), tf.inside_function()))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        fit(model, x, y, validation_data=(tiny_data.x[120:180], tiny_data.y[120:180]), epochs=1, batch_size=32,
            seed=3, verbose=0)
    assert created and not [name for name, traced in created if traced]  # the optimizer's slots, made eagerly
    assert model.optimizer.built


def test_run_dir_gets_checkpoint_history_and_no_leftover_backup(tiny_data, tmp_path):
    model, history = _train(tiny_data, run_dir=tmp_path, epochs=2)
    assert (tmp_path / "checkpoints" / "best.keras").is_file()
    rows = (tmp_path / "history.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch") and len(rows) == 1 + len(history.history["loss"])
    assert not (tmp_path / "backup").exists()  # BackupAndRestore cleans up after a finished run


@pytest.mark.parametrize("restore_best", [True, False])
def test_training_ends_on_the_best_epoch_or_on_the_last_one(tiny_data, restore_best):
    # a learning rate of 100 from the second epoch on: the later epochs' losses are far above the first's
    import keras

    x, y = tiny_data.x[:120], tiny_data.y[:120]
    model = build_model(ModelSpec(cell="gru", units=(6,), precision="float32"), n_features=15, adapt=x, seed=3)
    ends = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate.assign(100.0)

        def on_epoch_end(self, epoch, logs=None):
            ends.append(self.model.get_weights())

    history = fit(model, x, y, epochs=4, batch_size=32, patience=10, seed=3, verbose=0, callbacks=[Record()],
                  restore_best=restore_best)
    losses = history.history["loss"]
    assert int(np.argmin(losses)) < 3  # the last epoch is not the best
    kept = ends[int(np.argmin(losses))] if restore_best else ends[-1]
    for a, b in zip(model.get_weights(), kept):
        np.testing.assert_array_equal(a, b)


def test_balanced_weights_make_classes_weigh_the_same():
    labels = np.array([0] * 80 + [1] * 20)
    w = balanced_sample_weights(labels)
    assert w[labels == 0].sum() == pytest.approx(w[labels == 1].sum())
    assert w.mean() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, argument",
    [({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"class_weight": "auto"}, "class_weight")],
)
def test_invalid_fit_arguments(tiny_data, kwargs, argument):
    model = build_model(ModelSpec(units=(2,), precision="float32"), n_features=15)
    with pytest.raises(InputError, match=f"argument {argument}"):
        fit(model, tiny_data.x[:10], tiny_data.y[:10], verbose=0, **kwargs)


def test_mismatched_lengths_are_an_input_error(tiny_data):
    model = build_model(ModelSpec(units=(2,), precision="float32"), n_features=15)
    with pytest.raises(InputError, match="different lengths"):
        fit(model, tiny_data.x[:10], tiny_data.y[:9], verbose=0)


def test_precision_resolution():
    assert resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert resolve_precision("auto") in ("float32", "mixed_float16")  # no bf16 default: measured slower
    with pytest.raises(InputError, match="argument precision"):
        resolve_precision("fp8")
