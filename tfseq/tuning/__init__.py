"""Keras Tuner search over :class:`tfseq.ModelSpec`: ``tune`` and ``SearchSpace``.

(Retraining the winner into a RUN is a workflow: :func:`tfseq.workflows.retrain.retrain`.)

Examples:
    >>> from tfseq.tuning import SearchSpace, tune
    >>> result = tune(train, val, "search", objective="val_auc", max_trials=20,
    ...               space=SearchSpace({"cell": ["lstm", "gru"]}), max_params=100_000)
    >>> result.best_spec.name
"""

from __future__ import annotations

from tfseq.tuning.objective import parse_objective as parse_objective
from tfseq.tuning.results import TuningResult as TuningResult
from tfseq.tuning.results import best_train_config as best_train_config
from tfseq.tuning.results import load_result as load_result
from tfseq.tuning.search import TUNERS as TUNERS
from tfseq.tuning.search import tune as tune
from tfseq.tuning.space import HYPERPARAMETERS as HYPERPARAMETERS
from tfseq.tuning.space import Range as Range
from tfseq.tuning.space import SearchSpace as SearchSpace
from tfseq.tuning.space import parse_values as parse_values

__all__ = [
    "HYPERPARAMETERS",
    "Range",
    "SearchSpace",
    "TUNERS",
    "TuningResult",
    "best_train_config",
    "load_result",
    "parse_objective",
    "parse_values",
    "tune",
]
