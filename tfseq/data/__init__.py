"""Data: sequences in memory, splits and the synthetic semiconductor set."""

from tfseq.data.sequences import SequenceSet as SequenceSet
from tfseq.data.splits import split_sequences as split_sequences
from tfseq.data.synthetic import FEATURE_NAMES as FEATURE_NAMES
from tfseq.data.synthetic import make_semiconductor_data as make_semiconductor_data
from tfseq.data.synthetic import to_long_frame as to_long_frame

__all__ = ["FEATURE_NAMES", "SequenceSet", "make_semiconductor_data", "split_sequences", "to_long_frame"]
