"""Data: sequences in memory, splits and the synthetic semiconductor set.

The names below are imported on first use, so that importing a submodule (as the command line's
argument parsers do) does not wait for scikit-learn or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfseq._lazy import attach

if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports on first use
    from tfseq.data.sequences import SequenceSet as SequenceSet
    from tfseq.data.splits import split_sequences as split_sequences
    from tfseq.data.synthetic import FEATURE_NAMES as FEATURE_NAMES
    from tfseq.data.synthetic import make_semiconductor_data as make_semiconductor_data
    from tfseq.data.synthetic import to_long_frame as to_long_frame

_EXPORTS = {
    "SequenceSet": "tfseq.data.sequences",
    "split_sequences": "tfseq.data.splits",
    "FEATURE_NAMES": "tfseq.data.synthetic",
    "make_semiconductor_data": "tfseq.data.synthetic",
    "to_long_frame": "tfseq.data.synthetic",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = attach(__name__, _EXPORTS)
