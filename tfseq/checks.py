"""Shared argument checks: one sentence each, naming the Python argument (the CLI shows its flag)."""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np

from tfseq.errors import InputError


@overload
def positive_int(argument: str, value: Any, *, allow_none: Literal[False] = False) -> int: ...
@overload
def positive_int(argument: str, value: Any, *, allow_none: bool) -> int | None: ...


def positive_int(argument: str, value: Any, *, allow_none: bool = False) -> int | None:
    """Returns ``value`` as an int if it is a positive integer (or None, with ``allow_none``).

    Raises:
        InputError: naming ``argument``, what was received and what is allowed.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise InputError(f"Received an invalid value for argument {argument}, expected {expected}, got {value!r}.",
                         arguments=(argument,))
    return int(value)


@overload
def positive_number(argument: str, value: Any, *, allow_none: Literal[False]) -> float: ...
@overload
def positive_number(argument: str, value: Any, *, allow_none: bool = True) -> float | None: ...


def positive_number(argument: str, value: Any, *, allow_none: bool = True) -> float | None:
    """Returns ``value`` as a float if it is a finite positive number (or None, with ``allow_none``).

    Raises:
        InputError: naming ``argument``, what was received and what is allowed.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)) \
            or not value > 0 or math.isinf(value):
        raise InputError(f"Received an invalid value for argument {argument}, expected a positive number, "
                         f"got {value!r}.", arguments=(argument,))
    return float(value)
