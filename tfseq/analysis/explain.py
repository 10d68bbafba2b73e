"""Why a model answers as it does: attributions per feature and per step.

Two methods that check each other:

* :func:`integrated_gradients` (Sundararajan et al., 2017) through the Keras model: for an input
  ``x`` and a baseline ``b``, the attribution of feature ``f`` at step ``s`` is
  ``(x - b)[s, f] * integral_0^1 d out(b + a (x - b)) / dx[s, f] da``. The integral is a
  Gauss-Legendre quadrature of ``steps`` points (exact for polynomials of degree ``2 steps - 1``,
  so it needs far fewer model calls than a Riemann sum for the smooth functions recurrent cells
  compute). The baseline (:func:`mean_baseline`) is the training mean of each feature, read from
  the model's normalisation layer, on every valid step; padded steps keep the input, so they get
  exactly zero attribution and the model masks them along the whole path. Completeness:
  attributions sum to ``out(x) - out(b)``; :func:`completeness_error` measures how close.
* :func:`tfseq.analysis.permutation.permutation_importance` through any artifact (a ``predict``
  function): shuffle one feature's whole sequence across sequences, or every feature over a window
  of steps, and measure how much the task metric drops (its own module, as it needs no Keras).

Everything here takes arrays; loading a RUN and its data is :mod:`tfseq.workflows.explain`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tfseq.checks import positive_int
from tfseq.data.sequences import valid_mask
from tfseq.errors import InputError

if TYPE_CHECKING:  # Keras and TensorFlow are imported where they are used
    import keras

__all__ = [
    "COMPLETENESS_TOLERANCE", "DEFAULT_IG_STEPS", "REFINE_FACTOR", "REFINE_ROUNDS", "Attributions",
    "completeness_error", "integrated_gradients", "keras_predict", "mean_baseline", "plot_attribution_heatmap",
    "top_drivers", "training_mean", "valid_steps",
]

#: Gauss-Legendre points of the integrated-gradients integral. Measured on 2 cores: an LSTM-128
#: trained one epoch on the demo's data (20 steps x 15 features) kept every sequence's relative
#: completeness error under 3e-5 with 16 points; a RUN of `tfseq train` (LSTM-128, masking,
#: dropout) had 370 of 10,000 sequences above 0.05, which the refinement (64, then 256 points)
#: brought under it.
DEFAULT_IG_STEPS = 16
#: The largest relative completeness error (see :func:`completeness_error`) reported as within
#: tolerance; a sequence beyond it is integrated again with more points (``REFINE_FACTOR``).
COMPLETENESS_TOLERANCE = 0.05
#: How many times the points a sequence gets when its integral misses the tolerance, and how
#: many times that is tried (16 points, then 64, then 256).
REFINE_FACTOR = 4
REFINE_ROUNDS = 2
#: Model input rows (sequences x quadrature points) per gradient call.
DEFAULT_BATCH_ROWS = 4096


class Attributions(NamedTuple):
    """What :func:`integrated_gradients` computed.

    Attributes:
        values: float32 ``[sequences, steps, features, targets]``; zero on padded steps.
        output: The model's output at the input, ``[sequences, targets]``.
        baseline_output: The model's output at the baseline, ``[sequences, targets]``.
        points: Quadrature points each sequence took, ``[sequences]``: ``steps``, or more where
            an integral missed the tolerance.
    """

    values: np.ndarray
    output: np.ndarray
    baseline_output: np.ndarray
    points: np.ndarray


def valid_steps(lengths: np.ndarray | None, n: int, steps: int) -> np.ndarray:
    """Boolean ``[n, steps]``: True on a sequence's real steps, False on its padding (at the end)."""
    if lengths is None:
        return np.ones((n, steps), dtype=bool)
    return valid_mask(lengths, steps)


def training_mean(model: keras.Model) -> np.ndarray:
    """The training mean of each feature: the mean of the model's normalisation layer (zeros without one)."""
    from tfseq.export.schema import normalization_of

    stats = normalization_of(model)
    n_features = int(model.inputs[0].shape[-1])
    if stats is None:
        return np.zeros(n_features, dtype=np.float32)
    return np.asarray(stats["mean"], dtype=np.float32).reshape(n_features)


def mean_baseline(x: np.ndarray, mean: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The default baseline: ``mean`` (per feature) on every valid step, the input itself on padding."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(valid[:, :, None], np.asarray(mean, dtype=np.float32)[None, None, :], x).astype(np.float32)


def _quadrature(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre points and weights on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return ((nodes + 1.0) / 2.0).astype(np.float32), (weights / 2.0).astype(np.float32)


#: Compiled gradient and output functions per model and head: tracing costs about a second, and
#: ``tfseq predict --explain`` explains block after block with the same model.
_COMPILED: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


def _functions(model: keras.Model, head: str) -> tuple[Any, Any]:
    """``(path_gradients(points, column), outputs(x))``, compiled once per model and head."""
    import tensorflow as tf

    per_model = _COMPILED.setdefault(model, {})
    if head in per_model:
        return per_model[head]
    output = _target_function(model, head)
    spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([], tf.int32)])
    def path_gradients(points: tf.Tensor, column: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(points)
            value = tf.gather(output(points), column, axis=1)
        return tape.gradient(value, points)  # rows are independent: d sum / d row = d row / d row

    @tf.function(input_signature=[spec])
    def outputs(batch: tf.Tensor) -> tf.Tensor:
        return output(batch)

    per_model[head] = (path_gradients, outputs)
    return per_model[head]


def _target_function(model: keras.Model, head: str) -> Callable[[Any], Any]:
    """``x -> [n, outputs]`` float32: the head's output (a streaming head's last step)."""
    import tensorflow as tf

    names = list(model.output_names)

    def output(x: Any) -> Any:
        out = model(x, training=False)
        if isinstance(out, dict):
            out = out[head] if head in out else next(iter(out.values()))
        elif isinstance(out, (list, tuple)):
            out = out[names.index(head)] if head in names else out[0]
        out = tf.cast(out, tf.float32)
        if out.shape.rank == 3:
            out = out[:, -1, :]
        return tf.reshape(out, [tf.shape(out)[0], -1])

    return output


def integrated_gradients(
    model: keras.Model,
    x: np.ndarray,
    *,
    head: str,
    targets: Sequence[int] = (-1,),
    baseline: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    steps: int = DEFAULT_IG_STEPS,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    tolerance: float | None = COMPLETENESS_TOLERANCE,
    scale: float = 1.0,
    progress: bool = False,
) -> Attributions:
    """Integrated gradients of output columns of ``model``'s ``head`` with respect to its raw input.

    Args:
        model: The Keras model (raw measurements in, normalisation inside).
        x: float32 ``[sequences, steps, features]``.
        head: Name of the output to explain.
        targets: Columns of that output to explain, e.g. ``(-1,)`` for a binary model's
            ``p(class 1)`` or a regression value, ``range(k)`` for each class of a multiclass one.
            A streaming head (one output per step) is explained at its last step.
        baseline: ``[sequences, steps, features]``; default :func:`mean_baseline` of
            :func:`training_mean`.
        valid: Boolean ``[sequences, steps]``, False on padding (default: every step); padded
            steps get zero attribution.
        steps: Gauss-Legendre points of the path integral.
        batch_rows: Model input rows (sequences x points) per gradient call; memory grows with it.
        tolerance: Sequences whose completeness error (:func:`completeness_error`) exceeds this
            are integrated again with ``REFINE_FACTOR`` times the points, up to ``REFINE_ROUNDS``
            times; None: never.
        scale: The output scale of :func:`completeness_error` (1 for probabilities).
        progress: Show a progress bar on a terminal.

    Returns:
        The attributions ``[sequences, steps, features, targets]``, the outputs at the input
        and at the baseline (``[sequences, targets]`` each) and the points each sequence took.

    Raises:
        InputError: for an ``x`` or ``baseline`` of the wrong shape, or non-positive ``steps``.

    Examples:
        >>> import numpy as np
        >>> from tfseq.models import ModelSpec, build_model
        >>> model = build_model(ModelSpec(cell="gru", units=(4,)), n_features=3, steps=5)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
        >>> result = integrated_gradients(model, x, head="binary")
        >>> result.values.shape
        (2, 5, 3, 1)
        >>> bool(completeness_error(result).max() < COMPLETENESS_TOLERANCE)
        True
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    steps = positive_int("steps", steps)
    batch_rows = positive_int("batch_rows", batch_rows)
    x = np.asarray(x, dtype=np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != 3 or any(e is not None and e != h for e, h in zip(expected, x.shape[1:])):
        raise InputError(f"Received x of shape {x.shape}, expected [sequences, {expected[0]}, {expected[1]}].",
                         arguments=("x",))
    n = len(x)
    valid = valid_steps(None, n, x.shape[1]) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != x.shape[:2]:
        raise InputError(f"Received valid of shape {valid.shape}, expected {x.shape[:2]} ([sequences, steps] of x).",
                         arguments=("valid",))
    if baseline is None:
        baseline = mean_baseline(x, training_mean(model), valid)
    baseline = np.asarray(baseline, dtype=np.float32)
    if baseline.shape != x.shape:
        raise InputError(f"Received a baseline of shape {baseline.shape}, expected {x.shape} as x.",
                         arguments=("baseline",))
    _, outputs = _functions(model, head)
    width = int(outputs(tf.constant(x[:1] if n else np.zeros((1,) + x.shape[1:], np.float32))).shape[1])
    targets = [int(t) % width for t in targets]  # tf.gather takes no negative index
    with tqdm(total=n * len(targets), unit="seq", desc="integrated gradients", disable=None if progress else True,
              leave=False) as bar:
        values, out_x, out_b = _integrate(model, head, x, baseline, valid, targets, steps, batch_rows, bar.update)
    result = Attributions(values, out_x, out_b, np.full(n, steps, dtype=np.int32))
    finer = steps
    for _ in range(REFINE_ROUNDS if tolerance is not None else 0):
        # A path through a saturating sigmoid bends sharply: integrate those sequences again, finer.
        again = np.flatnonzero(completeness_error(result, scale=scale).max(axis=1) > tolerance)
        if not len(again):
            break
        finer *= REFINE_FACTOR
        redo, _, _ = _integrate(model, head, x[again], baseline[again], valid[again], targets, finer,
                                batch_rows, lambda _: None)
        result.values[again] = redo
        result.points[again] = finer
    return result


def _integrate(model: keras.Model, head: str, x: np.ndarray, baseline: np.ndarray, valid: np.ndarray,
               targets: list[int], steps: int, batch_rows: int,
               progress: Callable[[int], Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The path integrals in batches of about ``batch_rows`` model rows: (values, out(x), out(baseline))."""
    import tensorflow as tf

    path_gradients, outputs = _functions(model, head)
    alphas, weights = _quadrature(steps)
    columns = np.asarray(targets)
    n = len(x)
    per_call = max(1, batch_rows // steps)
    values = np.zeros(x.shape + (len(targets),), dtype=np.float32)
    out_x = np.zeros((n, len(targets)), dtype=np.float32)
    out_b = np.zeros((n, len(targets)), dtype=np.float32)
    a = alphas[:, None, None, None]
    for start in range(0, n, per_call):
        xb, bb = x[start:start + per_call], baseline[start:start + per_call]
        delta = np.where(valid[start:start + per_call, :, None], xb - bb, 0.0).astype(np.float32)
        points = tf.constant((bb[None] + a * delta[None]).reshape((-1,) + xb.shape[1:]))
        out_x[start:start + len(xb)] = outputs(tf.constant(xb)).numpy()[:, columns]
        out_b[start:start + len(xb)] = outputs(tf.constant(bb)).numpy()[:, columns]
        for j, column in enumerate(targets):
            grads = path_gradients(points, tf.constant(column, dtype=tf.int32)).numpy()
            mean_grad = np.tensordot(weights, grads.reshape((steps,) + xb.shape), axes=1)
            values[start:start + len(xb), ..., j] = delta * mean_grad
            progress(len(xb))
    return values, out_x, out_b


def keras_predict(model: keras.Model, head: str, *, batch_size: int = 4096) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> [n, outputs]``: the head's output through one compiled function, for
    :func:`permutation_importance` on a Keras model (about 5 times as fast as ``model.predict``
    for an LSTM-128 on 2 cores)."""
    import tensorflow as tf

    _, outputs = _functions(model, head)
    batch_size = positive_int("batch_size", batch_size)

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        parts = [outputs(tf.constant(x[s:s + batch_size])).numpy() for s in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 1), dtype=np.float32)

    return predict


def completeness_error(result: Attributions, *, scale: float = 1.0) -> np.ndarray:
    """Relative completeness error per sequence and target, ``[sequences, targets]``.

    ``|sum(attributions) - (out(x) - out(baseline))| / max(|out(x) - out(baseline)|, 0.01 scale)``:
    relative to the output difference, floored at 1 % of ``scale`` (1 for probabilities; the
    spread of a regression's outputs) so a sequence that barely moves from the baseline does not
    divide by nearly zero.
    """
    total = result.values.sum(axis=(1, 2), dtype=np.float64)
    difference = result.output.astype(np.float64) - result.baseline_output.astype(np.float64)
    return np.abs(total - difference) / np.maximum(np.abs(difference), 0.01 * scale)


def top_drivers(attributions: np.ndarray, feature_names: Sequence[str], k: int) -> list[str]:
    """Each sequence's ``k`` largest ``|attribution|`` as ``feature@step`` (1-based), ``;``-joined.

    Args:
        attributions: ``[sequences, steps, features]`` (one target).
        feature_names: Names of the features, in the order of the last axis.
        k: Drivers per sequence (fewer where a sequence has fewer non-zero cells).
    """
    k = positive_int("k", k)
    n, steps, features = attributions.shape
    flat = np.abs(attributions.reshape(n, steps * features))
    k_eff = min(k, flat.shape[1])
    top = np.argsort(-flat, axis=1, kind="stable")[:, :k_eff]
    rows = []
    for i in range(n):
        cells = [c for c in top[i] if flat[i, c] > 0]
        rows.append(";".join(f"{feature_names[c % features]}@{c // features + 1}" for c in cells))
    return rows


def plot_attribution_heatmap(matrix: np.ndarray, feature_names: Sequence[str], path: Path, *,
                             title: str = "Mean |attribution|") -> Path:
    """Features (rows, in the given order) x steps (columns, 1-based) heatmap of ``matrix``."""
    from tfseq.plots import _pyplot, _save

    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    features, steps = matrix.shape
    fig, ax = plt.subplots(figsize=(min(14.0, 3.0 + 0.35 * steps), min(12.0, 1.5 + 0.3 * features)))
    image = ax.imshow(matrix, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(features), list(feature_names))
    ticks = list(range(0, steps, max(1, steps // 20)))
    ax.set_xticks(ticks, [str(t + 1) for t in ticks])
    ax.set(title=title, xlabel="step", ylabel="feature")
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, path)
