"""Argument types shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

#: What each command's ``add_parser(sub)`` receives: the result of ``parser.add_subparsers()``.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def number_in(
    low: float, high: float | None = None, *, low_closed: bool = False, high_closed: bool = False
) -> Callable[[str], float]:
    """An argparse type for a float in an interval, e.g. ``number_in(0, 1, high_closed=True)`` for (0, 1].

    With no ``high`` it is a number above ``low`` (``number_in(0)``: a positive number).
    """
    if high is None:
        expected = f"a number >= {low:g}" if low_closed else ("a positive number" if low == 0 else f"a number > {low:g}")
    else:
        expected = f"a number in {'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        above = value >= low if low_closed else value > low
        below = high is None or (value <= high if high_closed else value < high)
        if not (above and below):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value:g}")
        return value

    return parse
