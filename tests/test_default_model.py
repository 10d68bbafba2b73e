"""The default model's pieces: the summary branch, the ridge-fitted linear paths, fixed-length data
kept whole (no masking), long sequences averaged before the recurrent layers."""

from __future__ import annotations

import numpy as np
import pytest

from tfseq.errors import SpecError
from tfseq.models.builders import build_model, refit_linear_paths
from tfseq.models.ridge import ALPHAS, fit_ridge
from tfseq.models.spec import HeadSpec, ModelSpec
from tfseq.training.defaults import COMPETING_GROUPS, RANDOM_FEATURES, default_spec, training_budget


def _summary_numpy(x: np.ndarray, lengths: np.ndarray, segments: int) -> np.ndarray:
    rows = []
    for seq, n in zip(x, lengths):
        v = seq[:n].astype(np.float64)
        t = np.arange(n, dtype=np.float64)
        slope = np.polyfit(t, v, 1)[0] * n if n > 1 else np.zeros(v.shape[1])
        ranks = np.round(np.linspace(0, 1, segments) * (n - 1)).astype(int)
        quantiles = np.sort(v, axis=0)[::-1][ranks]  # descending, as the layer reads them
        part = np.floor(t * segments / n).astype(int)
        parts = np.stack([v[part == k].mean(axis=0) if np.any(part == k) else np.zeros(v.shape[1])
                          for k in range(segments)])
        rows.append(np.concatenate([v.mean(0), v.std(0), v.min(0), v.max(0), slope,
                                    quantiles.T.reshape(-1), parts.reshape(-1)]))
    return np.asarray(rows)


def test_summary_branch_is_the_baselines_statistics_over_the_real_steps(rng):
    import keras

    from tfseq.models.layers import SequenceSummary, StepMask

    x = rng.normal(size=(6, 11, 2)).astype("float32")
    lengths = np.array([11, 7, 4, 11, 2, 9])
    x[np.arange(11)[None, :] >= lengths[:, None]] = 0.0
    x[0, 3] = 0.0  # an all-zero real step of an unpadded sequence counts (fixed length below)
    inputs = keras.Input((11, 2))
    masked = keras.Model(inputs, SequenceSummary(4)([inputs, StepMask()(inputs)]))
    np.testing.assert_allclose(masked.predict(x[1:], verbose=0), _summary_numpy(x[1:], lengths[1:], 4),
                               rtol=1e-4, atol=1e-4)
    whole = keras.Model(inputs, SequenceSummary(4)(inputs))  # no mask: every step is data
    np.testing.assert_allclose(whole.predict(x[:1], verbose=0), _summary_numpy(x[:1], [11], 4),
                               rtol=1e-4, atol=1e-4)


def _random_convolutions_numpy(x, channels, biases, widths, dilations, lengths):
    """MiniRocket's proportion of positive values (soft), written out over each real sequence alone."""
    import itertools

    rows = []
    for seq, n in zip(x, lengths):
        feats = []
        for i, d in enumerate(dilations):
            for k, chosen in enumerate(itertools.combinations(range(9), 3)):
                taps = np.full(9, -1.0)
                taps[list(chosen)] = 2.0
                z = np.pad(seq[:n] @ channels[:, k], 4 * d)  # the sequence alone, zero-padded ('same')
                conv = sum(taps[j] * z[j * d:j * d + n] for j in range(9))
                feats.extend((1.0 / (1.0 + np.exp(-(conv[:, None] - biases[i, k]) / widths[i, k]))).mean(axis=0))
        rows.append(feats)
    return np.asarray(rows)


def test_random_convolutions_are_minirockets_features_over_the_real_steps(rng, tmp_path):
    import keras

    from tfseq.models.layers import RandomConvolutions, StepMask, dilations

    assert dilations(40) == [1, 2, 3, 4]  # up to (40 - 1) / 8 = 4.9: nine taps span the sequence
    x = rng.normal(size=(5, 40, 3)).astype("float32")
    lengths = np.array([40, 31, 12, 40, 25])
    x[np.arange(40)[None, :] >= lengths[:, None]] = 0.0
    layer = RandomConvolutions(40, 3, features=700, seed=3, min_biases=1)
    inputs = keras.Input((40, 3))
    model = keras.Model(inputs, layer([inputs, StepMask()(inputs)]))
    assert layer.per_dilation == 2 and model.output.shape[-1] == 84 * 2 * 4
    layer.adapt(x, (np.arange(40)[None, :] < lengths[:, None]).astype("float32")[..., None])
    biases = layer.biases.numpy()
    assert np.all(np.abs(biases) > 0) and len(np.unique(biases)) > 600  # drawn from the data
    channels = layer.channels.numpy()
    assert set(np.unique(channels)) == {0.0, 1.0} and np.all(channels.sum(0) >= 1)
    widths = layer.widths.numpy()
    assert np.all(widths > 1e-3) and len(np.unique(widths)) > 300
    got = model.predict(x, verbose=0)
    path = tmp_path / "m.keras"  # the data-drawn biases and the channels travel with the file (safe mode)
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path, safe_mode=True).predict(x, verbose=0), got)
    expected = _random_convolutions_numpy(x, channels, biases, widths, layer.dilations, lengths)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert 0.2 < got.mean() < 0.8  # biases are quantiles of the outputs: neither all 0 nor all 1


def test_random_convolutions_of_the_differences_read_each_step_minus_the_one_before(rng, tmp_path):
    """MultiRocket's second representation: kernels of their own over x[t] - x[t-1] (0 at the first
    real step), counted over the real steps; the features of the steps come first, as without."""
    import keras

    from tfseq.models.layers import RandomConvolutions, StepMask

    x = rng.normal(size=(5, 40, 3)).astype("float32")
    lengths = np.array([40, 31, 12, 40, 25])
    x[np.arange(40)[None, :] >= lengths[:, None]] = 0.0
    layer = RandomConvolutions(40, 3, features=1400, seed=3, differences=True, min_biases=1)
    inputs = keras.Input((40, 3))
    model = keras.Model(inputs, layer([inputs, StepMask()(inputs)]))
    assert model.output.shape[-1] == 2 * 84 * 2 * 4  # 700 features each: as features=700 alone
    layer.adapt(x, (np.arange(40)[None, :] < lengths[:, None]).astype("float32")[..., None])
    got = model.predict(x, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path, safe_mode=True).predict(x, verbose=0), got)
    steps = _random_convolutions_numpy(x, layer.channels.numpy(), layer.biases.numpy(), layer.widths.numpy(),
                                       layer.dilations, lengths)
    change = np.zeros_like(x)
    for i, n in enumerate(lengths):
        change[i, 1:n] = np.diff(x[i, :n], axis=0)
    changes = _random_convolutions_numpy(change, layer.difference_channels.numpy(), layer.difference_biases.numpy(),
                                         layer.difference_widths.numpy(), layer.dilations, lengths)
    np.testing.assert_allclose(got, np.concatenate([steps, changes], axis=1), atol=1e-5)
    assert not np.array_equal(layer.channels.numpy(), layer.difference_channels.numpy())
    assert 0.2 < got[:, steps.shape[1]:].mean() < 0.8  # the differences' biases come from the differences


def test_more_random_features_go_to_more_biases_and_a_model_saved_before_loads_with_one(rng, tmp_path):
    """By default a kernel has at least three biases per dilation (more features, not more
    dilations); a file saved before the setting (no ``min_biases`` in its config) keeps one."""
    import json
    import zipfile

    import keras

    from tfseq.models.layers import RandomConvolutions, dilations

    wide = RandomConvolutions(251, 1, features=6000, seed=1, differences=True)
    assert wide.min_biases == 3 and wide.dilations == dilations(251, 3000 // (84 * 3))
    assert wide.per_dilation >= 3 and len(wide.dilations) < len(dilations(251, 3000 // 84))
    x = rng.normal(size=(4, 40, 2)).astype("float32")
    inputs = keras.Input((40, 2))
    layer = RandomConvolutions(40, 2, features=700, seed=3, min_biases=1)
    model = keras.Model(inputs, layer(inputs))
    layer.adapt(x)
    got = model.predict(x, verbose=0)
    path, old = tmp_path / "m.keras", tmp_path / "old.keras"
    model.save(path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:  # as written before the setting
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for entry in config["config"]["layers"]:
                    if entry["class_name"] == "RandomConvolutions":
                        assert entry["config"].pop("min_biases") == 1
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    loaded = keras.models.load_model(old, safe_mode=True)
    assert loaded.layers[-1].min_biases == 1 and loaded.layers[-1].per_dilation == layer.per_dilation
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), got)


def test_random_and_competing_convolutions_carry_a_small_set_where_summary_statistics_cannot(rng):
    """Two classes of waves with the same values in a different order (slow or fast, random phase):
    the summary's statistics and quantiles match, the convolutions tell them apart. Before training."""
    t = np.arange(60)
    freq = np.where(rng.random(240) < 0.5, 0.05, 0.2)
    x = np.sin(2 * np.pi * freq[:, None] * t + rng.uniform(0, 2 * np.pi, (240, 1)))[..., None]
    x = (x + 0.3 * rng.normal(size=x.shape)).astype("float32")
    y = (freq > 0.1).astype("int32")
    scores = {}
    for name, changes in (("none", {}), ("random", {"random_features": 1000}), ("competing", {"competing_groups": 8})):
        spec = default_spec("binary", steps=60, variable_length=False, sequences=120).replace(
            **{"random_features": 0, "competing_groups": 0, **changes}, units=(2,), conv_filters=(2,), dense_units=2)
        model = build_model(spec, n_features=1, steps=60, adapt=x[:120], targets=y[:120], seed=0)
        scores[name] = np.mean((model.predict(x[120:], verbose=0)["binary"][:, 0] > 0.5) == y[120:])
    assert min(scores["random"], scores["competing"]) > 0.95 and scores["none"] < 0.85, scores


def _competing_numpy(x, layer, lengths):
    """Hydra's counts written out over each real sequence alone: per representation (the steps, their
    first differences) and dilation, each group's kernels compete at every step; a kernel's soft
    count sums its outputs where it is the largest, its hard count the steps where it is the smallest."""
    groups, kernels = layer.groups, layer.kernels
    rows = []
    for seq, n in zip(x.astype(np.float64), lengths):
        change = np.zeros_like(seq[:n])
        change[1:] = np.diff(seq[:n], axis=0)
        row = []
        for values, prefix in ((seq[:n], ""), (change, "difference_")):
            taps, channels = getattr(layer, f"{prefix}taps").numpy(), getattr(layer, f"{prefix}channels").numpy()
            summed = values @ np.repeat(channels, kernels, axis=1)  # each output's group's features, summed
            for i, d in enumerate(layer.dilations):
                z = np.pad(summed, ((4 * d, 4 * d), (0, 0)))
                conv = sum(taps[i, j] * z[j * d:j * d + n] for j in range(9)).reshape(n, groups, kernels)
                largest, smallest = conv == conv.max(-1, keepdims=True), conv == conv.min(-1, keepdims=True)
                row += [(largest * conv).sum(0).ravel(), smallest.sum(0).ravel()]
        rows.append(np.concatenate(row))
    return np.asarray(rows)


def test_competing_convolutions_are_hydras_counts_over_the_real_steps(rng, tmp_path):
    import keras

    from tfseq.models.layers import CompetingConvolutions, StepMask

    x = rng.normal(size=(6, 40, 3)).astype("float32")
    lengths = np.array([40, 31, 12, 40, 25, 33])
    x[np.arange(40)[None, :] >= lengths[:, None]] = 0.0
    layer = CompetingConvolutions(40, 3, groups=4, seed=3)
    inputs = keras.Input((40, 3))
    model = keras.Model(inputs, layer([inputs, StepMask()(inputs)]))
    assert layer.dilations == [1, 2, 4] and model.output.shape[-1] == 2 * 3 * 2 * 4 * 8
    taps = layer.taps.numpy()
    np.testing.assert_allclose(taps.sum(axis=1), 0.0, atol=1e-6)  # each kernel: mean 0, absolute sum 1
    np.testing.assert_allclose(np.abs(taps).sum(axis=1), 1.0, rtol=1e-5)
    assert set(np.unique(layer.channels.numpy())) == {0.0, 1.0}
    layer.adapt(x, (np.arange(40)[None, :] < lengths[:, None]).astype("float32")[..., None])
    counts = _competing_numpy(x, layer, lengths)
    assert np.all(counts[:, 1::2].reshape(6, -1) >= 0) and np.any(counts <= 0)  # kernels that never won
    roots = np.sqrt(np.maximum(counts, 0) + 1e-6) * (counts > 0)
    np.testing.assert_allclose(layer.centres.numpy(), roots.mean(axis=0), rtol=1e-4, atol=1e-5)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, (roots - roots.mean(axis=0)) * (counts > 0), atol=2e-4)
    path = tmp_path / "m.keras"  # the taps, channels and centres travel with the file (safe mode)
    model.save(path)
    np.testing.assert_array_equal(keras.models.load_model(path, safe_mode=True).predict(x, verbose=0), got)


def test_competing_kernels_only_for_small_classification_sets():
    assert default_spec("binary", steps=150, sequences=40).competing_groups == COMPETING_GROUPS
    assert default_spec("multiclass", num_classes=10, steps=1460, sequences=400).competing_groups == COMPETING_GROUPS
    assert default_spec("multiclass", num_classes=10, steps=1460, sequences=600).competing_groups == 0
    assert default_spec("regression", steps=150, sequences=40).competing_groups == 0
    assert default_spec("forecast", steps=24, sequences=100).competing_groups == 0
    assert "competing kernels" in default_spec("binary", steps=150, sequences=40).description


def test_a_twin_trains_the_model_on_its_fixed_convolutions_computed_once(rng, tmp_path):
    import warnings

    import keras

    from tfseq.models.builders import carry_optimizer_state, fixed_features_model
    from tfseq.training.fit import fit

    x = rng.normal(size=(60, 30, 2)).astype("float32")
    y = rng.integers(0, 3, 60)
    spec = default_spec("multiclass", num_classes=3, steps=30, variable_length=False, sequences=60).replace(
        units=(2,), conv_filters=(2,), dense_units=2)
    assert spec.random_features and spec.competing_groups
    model = build_model(spec, n_features=2, steps=30, adapt=x, targets=y, seed=0)
    twin, features = fixed_features_model(model, spec)
    assert not {"random_convolutions", "competing_convolutions"} & {layer.name for layer in twin.layers}
    fixed = features(x)
    before = model.predict(x, verbose=0)["multiclass"]
    np.testing.assert_allclose(twin.predict((x, fixed), verbose=0)["multiclass"], before, atol=1e-6)
    fit(twin, (x[:48], fixed[:48]), {"multiclass": y[:48]}, epochs=3, batch_size=16, seed=0, verbose=0,
        validation_data=((x[48:], fixed[48:]), {"multiclass": y[48:]}), run_dir=tmp_path)
    after = model.predict(x, verbose=0)["multiclass"]
    assert np.abs(after - before).max() > 1e-4  # training the twin trained the model's own layers
    np.testing.assert_allclose(twin.predict((x, fixed), verbose=0)["multiclass"], after, atol=1e-6)
    carry_optimizer_state(twin, model)
    slots = {v.path.split("/", 1)[1]: v.numpy() for v in twin.optimizer.variables}
    assert len(model.optimizer.variables) == len(slots) > 2
    for variable in model.optimizer.variables:
        np.testing.assert_array_equal(variable.numpy(), slots[variable.path.split("/", 1)[1]])
    model.save(tmp_path / "m.keras")  # the model still saves whole, and loads in safe mode without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["multiclass"], after, atol=1e-6)
    assert fixed_features_model(model, spec.replace(random_features=0, competing_groups=0)) is None


def test_random_features_only_on_small_data():
    assert default_spec("binary", steps=150, sequences=40).random_features == RANDOM_FEATURES
    assert default_spec("multiclass", num_classes=10, steps=1460, sequences=80).random_features == RANDOM_FEATURES
    assert default_spec("multiclass", num_classes=10, steps=1460, sequences=400).random_features == RANDOM_FEATURES  # 487 read
    assert default_spec("multiclass", num_classes=10, steps=1460, sequences=600).random_features == 0
    assert default_spec("binary", steps=20, sequences=40_000).random_features == 0  # the demo's size
    assert default_spec("binary", steps=20).random_features == 0  # unknown size: none
    assert default_spec("forecast", steps=24, sequences=100).random_features == 0


def test_ridge_matches_scikit_learn_and_its_held_out_predictions_are_leave_one_out(rng):
    from sklearn.linear_model import Ridge, RidgeCV

    f = rng.normal(size=(40, 6)) * [1, 10, 100, 1, 1, 0.1]
    y = f @ rng.normal(size=(6, 2)) + rng.normal(size=(40, 2))
    w, b, held_out = fit_ridge(f, y)
    z = (f - f.mean(0)) / f.std(0)
    chosen = RidgeCV(alphas=ALPHAS).fit(z, y).alpha_
    reference = Ridge(alpha=chosen).fit(z, y)
    np.testing.assert_allclose(f @ w + b, reference.predict(z), atol=1e-8)
    for i in (0, 17, 39):  # refit without sequence i
        keep = np.arange(40) != i
        alone = Ridge(alpha=chosen).fit((f[keep] - f.mean(0)) / f.std(0), y[keep])
        np.testing.assert_allclose(held_out[i], alone.predict(z[i:i + 1])[0], rtol=0.05, atol=0.05)


@pytest.mark.parametrize("kind", ["regression", "forecast"])
def test_a_linear_path_starts_at_the_ridge_fit_and_stays_frozen(kind, rng):
    import keras

    x = rng.normal(size=(80, 10, 2)).astype("float32")
    y = (x[:, -3:, 0].sum(1, keepdims=True) * 5 + 40 + rng.normal(size=(80, 1))).astype("float32")
    spec = ModelSpec(cell="gru", units=(4,), heads=(HeadSpec(kind=kind),), summary_segments=10,
                     summary_statistics=kind == "regression", linear_skip=True, relative=kind == "forecast")
    model = build_model(spec, n_features=2, steps=10, adapt=x, targets=y, seed=0)
    features = keras.Model(model.inputs, model.get_layer("summary").output).predict(x, verbose=0)
    w, b, _ = fit_ridge(features, (y - y.mean()) / y.std())
    expected = (features @ w + b) * y.std() + y.mean()
    np.testing.assert_allclose(model.predict(x, verbose=0)[kind], expected, rtol=1e-4, atol=1e-3)
    assert np.sqrt(np.mean((expected - y) ** 2)) < 1.5  # the fit found the signal (noise std 1)
    linear = model.get_layer(f"{kind}_linear")
    before = [w.copy() for w in linear.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    assert not linear.trainable
    for old, new in zip(before, linear.get_weights()):
        np.testing.assert_array_equal(old, new)
    # a refit on more sequences (here with higher targets) takes what the trained network leaves,
    # in the model's own standardisation (the training targets' mean and std)
    more, y_more = np.concatenate([x, x[:20] + 0.1]), np.concatenate([y, y[:20] + 30.0])
    network = keras.Model(model.inputs, model.get_layer(f"{kind}_network").output).predict(more, verbose=0)
    refit_linear_paths(model, spec, more, y_more)
    f_more = keras.Model(model.inputs, model.get_layer("summary").output).predict(more, verbose=0)
    w, b, _ = fit_ridge(f_more, (y_more - y.mean()) / y.std() - network)
    np.testing.assert_allclose(model.predict(more, verbose=0)[kind],
                               (network + f_more @ w + b) * y.std() + y.mean(), rtol=1e-4, atol=1e-3)


def test_a_head_answers_its_fit_plus_half_its_network_part(rng):
    from tfseq.models.builders import share_network_parts
    from tfseq.training.defaults import NETWORK_SHARE

    x = rng.normal(size=(60, 8, 1)).astype("float32")
    for kind, y in (("regression", 40 + 5 * x[:, :3, 0].sum(1, keepdims=True)), ("binary", (x[:, 0, 0] > 0) * 1),
                    ("multiclass", np.digitize(x[:, 0, 0], [-0.4, 0.4]))):
        head = HeadSpec(kind=kind, num_classes=3 if kind == "multiclass" else 2)
        spec = ModelSpec(cell="gru", units=(4,), heads=(head,), summary_segments=8, linear_skip=True)
        model = build_model(spec, n_features=1, steps=8, adapt=x, targets=y, seed=0)
        fit_alone = model.predict(x, verbose=0)[kind]  # the network's part starts at 0
        model.fit(x, y, epochs=3, verbose=0)
        trained = model.predict(x, verbose=0)[kind]
        assert np.abs(trained - fit_alone).max() > 1e-3
        share_network_parts(model, spec, NETWORK_SHARE)
        if kind == "regression":  # the mean of the fit alone and the fit plus the network
            expected = (fit_alone + trained) / 2
        else:  # half of each part's logits: the normalised geometric mean of the two models' probabilities
            mean = np.sqrt(_class_probabilities(fit_alone) * _class_probabilities(trained))
            expected = (mean / mean.sum(axis=1, keepdims=True))[:, -fit_alone.shape[1]:]
        np.testing.assert_allclose(model.predict(x, verbose=0)[kind], expected, rtol=1e-4, atol=1e-4)


def _class_probabilities(output: np.ndarray) -> np.ndarray:
    """Every class's probability: a sigmoid's one column (the positive class) as two."""
    output = output.astype("float64")
    return np.concatenate([1.0 - output, output], axis=1) if output.shape[1] == 1 else output


def test_a_classifier_starts_at_the_scaled_ridge_classifier(rng):
    x = rng.normal(size=(120, 8, 1)).astype("float32")
    y = (x[:, :, 0].mean(1) > 0).astype("int32")
    spec = ModelSpec(cell="lstm", units=(4,), summary_segments=8, linear_skip=True)
    model = build_model(spec, n_features=1, steps=8, adapt=x, targets=y, seed=0)
    p = model.predict(x, verbose=0)["binary"][:, 0]
    assert np.mean((p > 0.5) == y) > 0.95  # before any training


def test_a_classifiers_refit_is_the_ridge_classifier_of_every_sequence_beside_its_trained_network(rng):
    import keras

    from tfseq.models.builders import _logit_scale

    x = rng.normal(size=(150, 8, 1)).astype("float32")
    y = (x[:, :, 0].mean(1) + 0.3 * rng.normal(size=150) > 0).astype("int32")
    spec = ModelSpec(cell="lstm", units=(4,), summary_segments=8, linear_skip=True)
    model = build_model(spec, n_features=1, steps=8, adapt=x[:100], targets=y[:100], seed=0)
    model.fit(x[:100], y[:100], epochs=3, verbose=0)
    assert np.any(model.get_layer("binary_network").get_weights()[0])  # the network learned beside the fit
    refit_linear_paths(model, spec, x, y)
    features = keras.Model(model.inputs, model.get_layer("summary").output).predict(x, verbose=0)
    w, b, held_out = fit_ridge(features, y[:, None].astype(float))
    k = _logit_scale(spec.heads[0], held_out, y[:, None].astype(float))
    got_w, got_b = model.get_layer("binary_linear").get_weights()
    np.testing.assert_allclose(got_w, k * w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_b, k * (b - 0.5), rtol=1e-4, atol=1e-5)


def test_fixed_length_data_keep_every_step_and_variable_length_data_mask_padding():
    fixed = default_spec("binary", steps=20, variable_length=False)
    assert not fixed.masking
    assert default_spec("binary", steps=20, variable_length=True).masking
    model = build_model(fixed, n_features=3, steps=20, seed=0)
    assert not any(layer.name == "masking" for layer in model.layers)
    streaming = default_spec("binary", steps=20, variable_length=False, streaming=True)
    assert streaming.streaming and not streaming.bidirectional and not streaming.conv_filters
    forecast = default_spec("forecast", steps=24, variable_length=False)
    assert forecast.relative and forecast.linear_skip and not forecast.masking


def test_long_sequences_are_averaged_before_the_recurrent_layers():
    spec = default_spec("multiclass", num_classes=4, steps=1460, variable_length=False)
    assert spec.recurrent_pool == 12 and spec.conv_pool == 3  # 1460 / 12 <= 128, 1460 / 3 <= 512
    model = build_model(spec, n_features=1, steps=1460, seed=0)
    assert model.get_layer("bidirectional_0").input.shape[1] == 122
    short = default_spec("binary", steps=20)
    assert short.recurrent_pool == 1 and short.conv_pool == 1


def test_small_data_train_longer():
    assert training_budget(50, 150) == (300, 30)  # a few dozen sequences
    assert training_budget(400, 1460) == (100, 10)  # long: epochs of about a second
    assert training_budget(50_000, 20) == (100, 10)


@pytest.mark.parametrize("changes,message", [
    ({"linear_skip": True}, "summary_segments"),
    ({"summary_segments": 4, "random_features": 100}, "linear_skip"),
    ({"random_features": -1}, "random_features"),
    ({"summary_segments": 4, "competing_groups": 32}, "linear_skip"),
    ({"competing_groups": -1}, "competing_groups"),
    ({"streaming": True, "competing_groups": 32}, "competing_groups"),
    ({"streaming": True, "conv_filters": (4,)}, "conv_filters"),
    ({"relative": True, "masking": True}, "masking"),
    ({"recurrent_pool": 0}, "recurrent_pool"),
])
def test_invalid_branch_settings(changes, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec(**changes)


def test_branch_fields_round_trip_through_json():
    spec = default_spec("regression", steps=300, variable_length=True)
    assert ModelSpec.from_json(spec.to_json()) == spec


def test_shorter_sequences_for_a_model_without_mask_are_named(tiny_run, tmp_path, caplog):
    import logging

    import pandas as pd

    from tfseq.cli.main import main

    run, data = tiny_run  # trained on sequences of one length: no mask
    frame = pd.read_csv(data)
    short = frame[frame["cycle"] <= frame["cycle"].max() - 2]  # every device two cycles short
    short.to_csv(tmp_path / "short.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="tfseq"):
        assert main(["predict", str(run / "model.keras"), str(tmp_path / "short.csv"),
                     "--out", str(tmp_path / "p.csv")]) == 0
    assert caplog.text.count("short.csv: sequences shorter than the model's 6 steps") == 1  # once, not per block
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tfseq"):
        assert main(["predict", str(run / "model.keras"), str(data), "--out", str(tmp_path / "q.csv")]) == 0
    assert "shorter than the model's" not in caplog.text
