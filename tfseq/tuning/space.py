"""The search space: which :class:`~tfseq.models.spec.ModelSpec` fields a search varies, and over what.

Each hyperparameter is *fixed* (one value), a *choice* (a list of values) or,
for numbers, a *range* (``{"min": a, "max": b}``, optionally ``"step"`` and
``"log"``). The same three forms come from a config file (JSON, YAML or TOML)
or from command-line text (``"lstm"``, ``"lstm,gru"``, ``"0:0.3"``).

Examples:
    >>> space = SearchSpace.from_config({"cell": ["lstm", "gru"], "layers": 1, "units": [8, 16]})
    >>> space.get_config()["layers"]
    1
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfseq.errors import InputError

if TYPE_CHECKING:
    import keras_tuner as kt

    from tfseq.models.spec import ModelSpec

# One vocabulary: tfseq.models.spec imports no Keras, so the command line can check its flags first.
from tfseq.models.spec import CELLS, POOLINGS  # noqa: E402

__all__ = ["SearchSpace", "Range", "HYPERPARAMETERS", "parse_values", "spec_from_values"]

#: Maximum number of stacked recurrent layers a search may build.
MAX_LAYERS = 3


@dataclass(frozen=True)
class Range:
    """A numeric interval: ``min`` to ``max`` inclusive, stepped or on a log scale."""

    min: float
    max: float
    step: float | None = None
    log: bool = False

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"min": self.min, "max": self.max}
        if self.step is not None:
            config["step"] = self.step
        if self.log:
            config["log"] = True
        return config


# name -> (kind, default); kind: "cat" (choices only), "int" or "float" (choices or range).
_KINDS: dict[str, str] = {
    "cell": "cat",
    "bidirectional": "bool",
    "layers": "int",
    "units": "int",
    "dropout": "float",
    "recurrent_dropout": "float",
    "pooling": "cat",
    "learning_rate": "float",
    "batch_size": "int",
}

#: The tunable hyperparameters, in the order trials.csv lists them.
HYPERPARAMETERS: tuple[str, ...] = tuple(_KINDS)

_DEFAULTS: dict[str, Any] = {
    "cell": list(CELLS),
    "bidirectional": [False, True],
    "layers": Range(1, MAX_LAYERS),
    "units": [16, 32, 64, 128],
    "dropout": Range(0.0, 0.5, step=0.1),
    "recurrent_dropout": Range(0.0, 0.3, step=0.1),
    "pooling": list(POOLINGS),
    "learning_rate": Range(1e-4, 1e-2, log=True),
    "batch_size": [32, 64, 128],
}


def _fail(name: str, got: Any, expected: str, source: str = "") -> InputError:
    if source.startswith("--"):  # a command-line flag names itself
        return InputError(f"Received an invalid value for argument {source}, expected {expected}, got {got!r}.")
    where = f"{source}: " if source else ""
    return InputError(f"{where}Received an invalid value for hyperparameter {name}, expected {expected}, got {got!r}.")


def _unknown(name: str, source: str = "") -> InputError:
    close = difflib.get_close_matches(name, HYPERPARAMETERS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(HYPERPARAMETERS)}."
    where = f"{source}: " if source else ""
    return InputError(f"{where}Received an unknown hyperparameter {name!r}; {hint}")


def _check_value(name: str, value: Any, source: str) -> Any:
    """Validates one candidate value of ``name``; returns it normalised."""
    kind = _KINDS[name]
    if name == "cell":
        if value not in CELLS:
            raise _fail(name, value, f"one of {', '.join(CELLS)}", source)
    elif name == "pooling":
        if value not in POOLINGS:
            raise _fail(name, value, f"one of {', '.join(POOLINGS)}", source)
    elif kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            value = value.lower() in ("true", "yes")
        if not isinstance(value, bool):
            raise _fail(name, value, "true or false", source)
    elif kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        low = 1
        high = MAX_LAYERS if name == "layers" else None
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
            expected = f"an integer from 1 to {MAX_LAYERS}" if name == "layers" else "a positive integer"
            raise _fail(name, value, expected, source)
    else:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            raise _fail(name, value, "a number", source)
        value = float(value)
        if name == "learning_rate" and not value > 0:
            raise _fail(name, value, "a positive number", source)
        if name in ("dropout", "recurrent_dropout") and not 0.0 <= value < 1.0:
            raise _fail(name, value, "a number in [0, 1)", source)
    return value


def _check(name: str, value: Any, source: str = "") -> Any:
    """Validates a fixed value, a list of choices or a range for ``name``."""
    if name not in _KINDS:
        raise _unknown(name, source)
    kind = _KINDS[name]
    if isinstance(value, Range) or isinstance(value, dict):
        if kind in ("cat", "bool"):
            raise _fail(name, value, "a value or a list of values (not a range)", source)
        config = value.get_config() if isinstance(value, Range) else dict(value)
        extra = sorted(set(config) - {"min", "max", "step", "log"})
        if extra or "min" not in config or "max" not in config:
            raise _fail(name, value, "a range {min: A, max: B} with optional step and log", source)
        low = _check_value(name, config["min"], source)
        high = _check_value(name, config["max"], source)
        if low > high:
            raise _fail(name, value, "an interval whose min is not above its max (an empty range)", source)
        step = config.get("step")
        if step is not None and (not isinstance(step, (int, float)) or isinstance(step, bool) or not step > 0):
            raise _fail(name, value, "a positive step", source)
        log = config.get("log", False)
        if not isinstance(log, bool):
            raise _fail(name, value, "log: true or false", source)
        if log and step is not None:
            raise _fail(name, value, "either step or log, not both", source)
        if log and not low > 0:
            raise _fail(name, value, "a positive min on a log scale", source)
        if kind == "int":
            step = None if step is None else int(step)
        if low == high:
            return low
        return Range(low, high, step=step, log=log)
    if isinstance(value, (list, tuple)):
        if not value:
            raise _fail(name, value, "at least one value (an empty list)", source)
        values = [_check_value(name, v, source) for v in value]
        values = list(dict.fromkeys(values))  # drop repeats, keep order
        return values[0] if len(values) == 1 else values
    return _check_value(name, value, source)


@dataclass(frozen=True)
class SearchSpace:
    """What a search varies; every hyperparameter not given keeps its default.

    Args:
        values: Hyperparameter name -> a fixed value, a list of choices or a
            :class:`Range`. Names: ``cell``, ``bidirectional``, ``layers``
            (1-3 stacked recurrent layers), ``units`` (per layer, tuned layer
            by layer), ``dropout``, ``recurrent_dropout``, ``pooling``,
            ``learning_rate`` and ``batch_size``.

    Defaults: every cell, uni- and bidirectional, 1-3 layers of 16-128 units,
    dropout 0-0.5 and recurrent dropout 0-0.3 (steps of 0.1), every pooling,
    learning rate 1e-4 to 1e-2 on a log scale, batch 32, 64 or 128.

    Raises:
        InputError: for an unknown name, an empty list or range, or a value
            ``ModelSpec`` would reject.
    """

    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        checked = dict(_DEFAULTS)
        for name, value in dict(self.values).items():
            checked[name] = _check(name, value)
        object.__setattr__(self, "values", checked)

    @classmethod
    def from_config(cls, config: dict[str, Any], *, source: str = "") -> "SearchSpace":
        """Builds a space from a mapping such as :meth:`get_config` returns.

        Args:
            config: Hyperparameter name (``-`` or ``_``) -> value, list or range.
            source: Where the mapping came from, for error messages.
        """
        if not isinstance(config, dict):
            raise InputError(f"{source or 'search space'}: holds a {type(config).__name__}; "
                             "expected a mapping of hyperparameter names to values.")
        values = {}
        for key, value in config.items():
            name = str(key).replace("-", "_")
            values[name] = _check(name, value, source)
        return cls(values)

    @classmethod
    def from_file(cls, path: Path) -> "SearchSpace":
        """Reads a space from a ``.json``, ``.yaml``/``.yml`` or ``.toml`` file.

        A ``search_space:`` table at the top level is used when present, so the
        space can share a file with other settings.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such search-space file.")
        if path.suffix.lower() == ".json":
            try:
                config = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}: unreadable search-space file ({exc}).") from None
        else:
            from tfseq.config import read_config

            config = read_config(path)
        if isinstance(config, dict) and isinstance(config.get("search_space"), dict):
            config = config["search_space"]
        return cls.from_config(config, source=str(path))

    def replace(self, **changes: Any) -> "SearchSpace":
        """Returns a copy with some hyperparameters fixed or narrowed (validated)."""
        return SearchSpace({**self.values, **changes})

    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable mapping; inverse of :meth:`from_config`."""
        return {k: v.get_config() if isinstance(v, Range) else v for k, v in self.values.items()}

    def is_fixed(self, name: str) -> bool:
        value = self.values[name]
        return not isinstance(value, (list, Range))

    def smallest_spec(self, base: ModelSpec) -> ModelSpec:
        """The spec with the fewest weights the space allows (to test an edge budget early)."""
        def low(name: str) -> Any:
            value = self.values[name]
            if isinstance(value, Range):
                return value.min
            return min(value) if isinstance(value, list) else value

        cell = self.values["cell"]
        cells = cell if isinstance(cell, list) else [cell]
        order = {"simple_rnn": 0, "gru": 1, "lstm": 2}
        bidirectional = self.values["bidirectional"]
        pooling = self.values["pooling"]
        poolings = pooling if isinstance(pooling, list) else [pooling]
        return base.replace(
            cell=min(cells, key=order.__getitem__),
            bidirectional=False if isinstance(bidirectional, list) else bidirectional,
            units=(int(low("units")),) * int(low("layers")),
            pooling="last" if "last" in poolings else ("mean" if "mean" in poolings else poolings[0]),
        )

    def declare(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Declares the space on a ``keras_tuner.HyperParameters``; returns the values of this trial.

        ``units`` becomes ``units_0``, ``units_1`` ... one per active layer.
        """
        values: dict[str, Any] = {}
        for name in HYPERPARAMETERS:
            if name == "units":
                continue
            values[name] = _declare(hp, name, self.values[name])
        counts = self.layer_counts()
        units = []
        for i in range(max(counts)):
            # units_1 and units_2 exist only for trials with that many layers, so a
            # random or Bayesian search never spends trials on unused values.
            deeper = [n for n in counts if n > i]
            if i == 0 or len(deeper) == len(counts):
                value = _declare(hp, f"units_{i}", self.values["units"])
            else:
                with hp.conditional_scope("layers", deeper):
                    value = _declare(hp, f"units_{i}", self.values["units"])
            if i < int(values["layers"]):
                units.append(int(value))
        values["units"] = tuple(units)
        return values

    def layer_counts(self) -> list[int]:
        """The numbers of stacked layers the space allows."""
        value = self.values["layers"]
        if isinstance(value, Range):
            return list(range(int(value.min), int(value.max) + 1))
        return sorted(value) if isinstance(value, list) else [int(value)]


def _declare(hp: kt.HyperParameters, name: str, value: Any) -> Any:
    if isinstance(value, Range):
        if isinstance(value.min, int) and isinstance(value.max, int) and not value.log:
            return hp.Int(name, int(value.min), int(value.max), step=value.step or 1)
        return hp.Float(name, float(value.min), float(value.max), step=value.step,
                        sampling="log" if value.log else "linear")
    if isinstance(value, list):
        return hp.Choice(name, value)
    return hp.Fixed(name, value)


def parse_values(name: str, text: str) -> Any:
    """Parses command-line text for one hyperparameter.

    ``"gru"`` fixes a value, ``"lstm,gru"`` gives choices and ``"1e-4:1e-2"``
    a range (log scale for ``learning_rate``).

    Raises:
        InputError: for an unknown name or text that is not a valid value.
    """
    if name not in _KINDS:
        raise _unknown(name)
    flag = "--" + name.replace("_", "-")
    text = str(text).strip()
    kind = _KINDS[name]

    def number(part: str) -> Any:
        if kind in ("cat", "bool"):
            return part
        try:
            as_float = float(part)
        except ValueError:
            raise InputError(f"Received an invalid value for argument {flag}, expected numbers such as "
                             f"16,32 or 16:64, got {text!r}.") from None
        return int(as_float) if kind == "int" and as_float.is_integer() else as_float

    if ":" in text and kind not in ("cat", "bool"):
        parts = text.split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise InputError(f"Received an invalid value for argument {flag}, expected MIN:MAX, got {text!r}.")
        config: dict[str, Any] = {"min": number(parts[0].strip()), "max": number(parts[1].strip())}
        if name == "learning_rate":
            config["log"] = True
        elif name in ("dropout", "recurrent_dropout"):
            config["step"] = 0.1
        return _check(name, config, flag)
    parts = [p.strip() for p in text.split(",")]
    if not text or not all(parts):
        raise InputError(f"Received an invalid value for argument {flag}, expected one value or a "
                         f"comma-separated list, got {text!r}.")
    values = [number(p) for p in parts]
    return _check(name, values if len(values) > 1 else values[0], flag)


def spec_from_values(base: ModelSpec, values: dict[str, Any]) -> ModelSpec:
    """The :class:`ModelSpec` of one trial: ``base`` with the tuned fields set."""
    return base.replace(
        cell=values["cell"],
        bidirectional=bool(values["bidirectional"]),
        units=tuple(int(u) for u in values["units"]),
        dropout=float(values["dropout"]),
        recurrent_dropout=float(values["recurrent_dropout"]),
        pooling=values["pooling"],
        learning_rate=float(values["learning_rate"]),
    )
