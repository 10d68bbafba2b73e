"""The model specification: a small, JSON-serialisable description of a model.

A :class:`ModelSpec` holds every architectural choice :func:`tfseq.build_model`
needs. It round-trips through ``get_config``/``from_config`` and JSON, so a
spec can live in a run directory, a tuning result or a config file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tfseq.errors import SpecError

CELLS = ("simple_rnn", "lstm", "gru")
MERGE_MODES = ("concat", "sum", "mul", "ave")
POOLINGS = ("last", "mean", "attention")
HEAD_KINDS = ("binary", "multiclass", "regression", "forecast")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def _fail(argument: str, got: Any, allowed: str) -> SpecError:
    return SpecError(
        f"Received an invalid value for argument {argument}, expected {allowed}, got {got!r}."
    )


@dataclass(frozen=True)
class HeadSpec:
    """One output of the model.

    Args:
        kind: ``"binary"`` (one sigmoid unit), ``"multiclass"`` (softmax over
            ``num_classes``), ``"regression"`` (one linear value) or
            ``"forecast"`` (``horizon`` linear values: the next N steps).
        name: Output name in the Keras model and exported signatures.
            Defaults to ``kind``.
        num_classes: Number of classes for ``"multiclass"``.
        horizon: Number of future values for ``"forecast"``.
        loss_weight: Weight of this head's loss when there are several heads.
    """

    kind: str = "binary"
    name: str = ""
    num_classes: int = 2
    horizon: int = 1
    loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise _fail("head kind", self.kind, f"one of {', '.join(HEAD_KINDS)}")
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        if not self.name.replace("_", "").isalnum():
            raise _fail("head name", self.name, "letters, digits and underscores")
        if self.kind == "multiclass" and (not isinstance(self.num_classes, int) or self.num_classes < 2):
            raise _fail("num_classes", self.num_classes, "an integer >= 2")
        if self.kind == "forecast" and (not isinstance(self.horizon, int) or self.horizon < 1):
            raise _fail("horizon", self.horizon, "a positive integer")
        if not self.loss_weight > 0:
            raise _fail("loss_weight", self.loss_weight, "a positive number")

    @property
    def is_classifier(self) -> bool:
        return self.kind in ("binary", "multiclass")

    @property
    def output_size(self) -> int:
        return {"binary": 1, "multiclass": self.num_classes, "regression": 1}.get(
            self.kind, self.horizon
        )


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a recurrent sequence model.

    Args:
        cell: Recurrent cell: ``"simple_rnn"``, ``"lstm"`` or ``"gru"``.
        units: Units of each stacked recurrent layer, first layer first.
        bidirectional: Wrap every recurrent layer in ``Bidirectional``.
        merge_mode: How ``Bidirectional`` merges the two directions.
        dropout: Dropout on the inputs of each recurrent layer, in [0, 1).
        recurrent_dropout: Dropout on the recurrent state, in [0, 1).
        layer_norm: Add ``LayerNormalization`` after each recurrent layer.
        pooling: How the last layer's sequence becomes one vector: ``"last"``
            (final state), ``"mean"`` (average over valid steps) or
            ``"attention"`` (learned attention weights over steps).
        heads: The outputs; several heads train jointly (e.g. fail/pass plus
            time-to-failure).
        masking: Treat all-zero steps as padding (variable-length sequences).
        streaming: One output after every step instead of one per sequence, so
            one model answers at any cycle (early warning, adaptive test). Needs a
            unidirectional model with ``"last"`` pooling; every step's loss weighs
            the same (padding steps none).
        dense_units: Units of an optional ReLU layer before the heads (0: none).
        conv_filters: Filters of a convolutional branch beside the recurrent layers, one
            ``Conv1D`` + batch normalisation + ReLU block each (kernel sizes 8, 5, 3, ...),
            averaged over the real steps (an FCN); () for none.
        summary_segments: A branch of per-feature summary statistics (mean, standard deviation,
            minimum, maximum, slope) and the means of this many equal parts of each sequence
            (:class:`tfseq.models.layers.SequenceSummary`); 0 for none.
        summary_statistics: The summary branch includes the five statistics (else only the
            parts: with as many parts as steps, the sequence itself).
        linear_skip: Every head adds a linear function of the summary branch to its output (before
            the sigmoid or softmax), fitted by ridge regression on the training data when the model
            is built and then frozen: for forecasts a ridge autoregression, for classes a ridge
            classifier scaled to the best logits. The network starts at 0 and learns what the fit
            misses. Needs ``summary_segments``.
        random_features: About this many random convolutional features
            (:class:`tfseq.models.layers.RandomConvolutions`, MiniRocket's kernels, on the steps the
            convolutional branch reads, half of them on their first differences) beside the
            summary branch in the linear path; 0 for none.
            Needs ``linear_skip``.
        competing_groups: Groups of 8 competing random kernels per dilation, over the steps and over
            their first differences (:class:`tfseq.models.layers.CompetingConvolutions`, Hydra), in
            the linear path beside the random features; 0 for none. Needs ``linear_skip``.
        relative: The recurrent layers read each step minus the sequence's last step (trending
            series look the same at every level).
        recurrent_pool: Average every this many steps before the recurrent layers (long
            sequences; 1: none).
        conv_pool: Average every this many steps before the convolutional branch (1: none).
        learning_rate: Adam learning rate.
        clipnorm: Gradient clipping by norm (0: none).
        precision: ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"`` or
            ``"auto"`` (resolved by :func:`tfseq.models.precision.resolve_precision`
            when the model is built). Output layers always stay float32.

    Examples:
        >>> spec = ModelSpec(cell="gru", units=(32, 16), pooling="attention")
        >>> ModelSpec.from_config(spec.get_config()) == spec
        True
    """

    cell: str = "lstm"
    units: tuple[int, ...] = (64,)
    bidirectional: bool = False
    merge_mode: str = "concat"
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    layer_norm: bool = False
    pooling: str = "last"
    heads: tuple[HeadSpec, ...] = field(default_factory=lambda: (HeadSpec(),))
    masking: bool = False
    streaming: bool = False
    dense_units: int = 0
    conv_filters: tuple[int, ...] = ()
    summary_segments: int = 0
    summary_statistics: bool = True
    linear_skip: bool = False
    random_features: int = 0
    competing_groups: int = 0
    relative: bool = False
    recurrent_pool: int = 1
    conv_pool: int = 1
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    precision: str = "auto"

    def __post_init__(self) -> None:
        units = self.units
        if isinstance(units, int):
            units = (units,)
        object.__setattr__(self, "units", tuple(units))
        object.__setattr__(self, "conv_filters", tuple(self.conv_filters))
        heads = tuple(h if isinstance(h, HeadSpec) else HeadSpec(**h) for h in self.heads)
        object.__setattr__(self, "heads", heads)
        if self.cell not in CELLS:
            raise _fail("cell", self.cell, f"one of {', '.join(CELLS)}")
        if not self.units or any(
            not isinstance(u, int) or isinstance(u, bool) or u < 1 for u in self.units
        ):
            raise _fail("units", self.units, "a non-empty list of positive integers")
        for name in ("bidirectional", "layer_norm", "masking", "streaming", "linear_skip", "relative",
                     "summary_statistics"):
            if not isinstance(getattr(self, name), bool):  # 'false' from a config is truthy
                raise _fail(name, getattr(self, name), "true or false")
        if self.merge_mode not in MERGE_MODES:
            raise _fail("merge_mode", self.merge_mode, f"one of {', '.join(MERGE_MODES)}")
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise _fail(name, value, "a number in [0, 1)")
        if self.pooling not in POOLINGS:
            raise _fail("pooling", self.pooling, f"one of {', '.join(POOLINGS)}")
        if not heads:
            raise _fail("heads", self.heads, "at least one head")
        if any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in self.conv_filters):
            raise _fail("conv_filters", self.conv_filters, "a list of positive integers")
        for name in ("summary_segments", "random_features", "competing_groups", "recurrent_pool", "conv_pool"):
            value = getattr(self, name)
            lowest = 1 if name.endswith("pool") else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
                raise _fail(name, value, "a positive integer" if lowest else "a non-negative integer")
        if self.linear_skip and not self.summary_segments:
            raise SpecError("Received linear_skip=True with summary_segments=0; the linear path reads the "
                            "summary branch: expected summary_segments > 0.")
        for name in ("random_features", "competing_groups"):
            if getattr(self, name) and not self.linear_skip:
                raise SpecError(f"Received {name} > 0 with linear_skip=False; these features feed the "
                                "linear path: expected linear_skip=True.")
        if self.relative and self.masking:
            raise SpecError("Received relative=True with masking=True; steps are read relative to the last one, "
                            "which padding would hide: expected sequences of one length (masking=False).")
        if self.streaming:
            whole = [n for n in ("conv_filters", "summary_segments", "linear_skip", "random_features",
                                 "competing_groups", "relative")
                     if getattr(self, n)] + [n for n in ("recurrent_pool", "conv_pool") if getattr(self, n) > 1]
            if whole:
                raise SpecError(f"Received streaming=True with {whole[0]}; it reads the whole sequence, and a "
                                "streaming model answers after every step: expected it off.")
            if self.bidirectional:
                raise SpecError("Received streaming=True with bidirectional=True; a streaming model answers after "
                                "every step and cannot read the steps still to come: expected bidirectional=False.")
            if self.pooling != "last":
                raise SpecError(f"Received streaming=True with pooling={self.pooling!r}; pooling over steps needs "
                                "the whole sequence: expected pooling='last'.")
            if any(h.kind == "forecast" for h in heads):
                raise SpecError("Received streaming=True with a forecast head; expected binary, multiclass or "
                                "regression heads (one answer per step).")
        names = [h.name for h in heads]
        if len(set(names)) != len(names):
            raise _fail("heads", names, "distinct head names")
        if not isinstance(self.dense_units, int) or self.dense_units < 0:
            raise _fail("dense_units", self.dense_units, "a non-negative integer")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise _fail("learning_rate", self.learning_rate, "a positive number")
        if not isinstance(self.clipnorm, (int, float)) or self.clipnorm < 0:
            raise _fail("clipnorm", self.clipnorm, "a non-negative number")
        if self.precision not in PRECISIONS:
            raise _fail("precision", self.precision, f"one of {', '.join(PRECISIONS)}")

    @property
    def name(self) -> str:
        """A short readable name such as ``bilstm-128x64``."""
        prefix = "bi" if self.bidirectional else ""
        cell = {"simple_rnn": "rnn"}.get(self.cell, self.cell)
        suffix = "-streaming" if self.streaming else ""
        return f"{prefix}{cell}-{'x'.join(str(u) for u in self.units)}{suffix}"

    @property
    def description(self) -> str:
        """The name with the pooling and the branches, e.g. ``bilstm-64 (last pooling, conv 32-64-32,
        summary of 32 parts, ridge path)``."""
        parts = ["an answer after every step" if self.streaming else f"{self.pooling} pooling"]
        if self.recurrent_pool > 1:
            parts.append(f"steps averaged by {self.recurrent_pool}")
        if self.relative:
            parts.append("steps relative to the last")
        if self.conv_filters:
            parts.append("conv " + "-".join(str(f) for f in self.conv_filters)
                         + (f" on steps averaged by {self.conv_pool}" if self.conv_pool > 1 else ""))
        if self.summary_segments:
            parts.append(f"summary of {self.summary_segments} parts")
        if self.linear_skip:
            reads = [n for n, on in (("random convolutions", self.random_features),
                                     ("competing kernels", self.competing_groups)) if on]
            parts.append("ridge path" + (f" with {' and '.join(reads)}" if reads else ""))
        return f"{self.name} ({', '.join(parts)})"

    def replace(self, **changes: Any) -> "ModelSpec":
        """Returns a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def get_config(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict; inverse of :meth:`from_config`."""
        config = dataclasses.asdict(self)
        config["units"] = list(self.units)
        config["conv_filters"] = list(self.conv_filters)
        config["heads"] = [dataclasses.asdict(h) for h in self.heads]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelSpec":
        """Builds a spec from :meth:`get_config` output.

        Raises:
            SpecError: on unknown keys or invalid values.
        """
        if not isinstance(config, dict):
            raise _fail("config", type(config).__name__, "a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise _fail("config", unknown[0], f"one of the keys {', '.join(sorted(known))}")
        config = dict(config)
        if "heads" in config:
            heads = config["heads"]
            if not isinstance(heads, (list, tuple)) or not all(isinstance(h, dict) for h in heads):
                raise _fail("heads", heads, "a list of head mappings")
            head_keys = {f.name for f in dataclasses.fields(HeadSpec)}
            for h in heads:
                bad = sorted(set(h) - head_keys)
                if bad:
                    raise _fail("heads", bad[0], f"one of the keys {', '.join(sorted(head_keys))}")
            config["heads"] = tuple(HeadSpec(**h) for h in heads)
        for name in ("units", "conv_filters"):
            if name in config and isinstance(config[name], list):
                config[name] = tuple(config[name])
        return cls(**config)

    def to_json(self, path: Path | None = None) -> str:
        """Returns the spec as JSON text, and writes it to ``path`` if given."""
        text = json.dumps(self.get_config(), indent=2) + "\n"
        if path is not None:
            from tfseq.io import write_text_atomic

            write_text_atomic(Path(path), text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "ModelSpec":
        """Reads a spec from JSON text or a ``.json`` file."""
        if isinstance(text_or_path, Path) or str(text_or_path).endswith(".json"):
            path = Path(text_or_path)
            try:
                text = path.read_text()
            except OSError as exc:
                raise SpecError(f"{path}: cannot read the spec file ({exc.strerror}).") from None
        else:
            text = str(text_or_path)
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"Spec is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
        return cls.from_config(config)
