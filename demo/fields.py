"""What a body field of a demo call must be: one `Field` per check, named in the 400 answer.

demo.routes lists, per call, the fields it requires (`requires=(positive("cents"),)`); a
forward call's body is checked field by field, the first bad one named:
"<action>: <field> must be <what>".
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AIRPORT = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True)
class Field:
    """A body field a forward call requires, and what its value must be."""

    name: str
    what: str  # the answer says "<action>: <name> must be <what>"
    check: Callable[[Any], bool]
    optional: bool = False  # absent is fine; present, it must pass `check`


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_positive(value: Any) -> bool:
    # bool is an int in Python, but `"cents": true` is a mistake worth naming.
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def text(name: str) -> Field:
    """A non-empty string."""
    return Field(name, "a non-empty string", _is_text)


def positive(name: str) -> Field:
    """A positive integer (never a bool or a float)."""
    return Field(name, "a positive integer", _is_positive)


def texts(name: str) -> Field:
    """A non-empty list of non-empty strings."""
    return Field(name, "a non-empty list of non-empty strings",
                 lambda v: isinstance(v, list) and bool(v) and all(map(_is_text, v)))


def date(name: str) -> Field:
    """A date as YYYY-MM-DD (the trip's input schema says the same)."""
    return Field(name, "a date YYYY-MM-DD",
                 lambda v: isinstance(v, str) and _DATE.fullmatch(v) is not None)


def airport(name: str) -> Field:
    """A three-letter IATA airport code."""
    return Field(name, "a three-letter airport code",
                 lambda v: isinstance(v, str) and _AIRPORT.fullmatch(v) is not None)


# Every forward call may carry its key in the body too (the header wins); absent is fine.
IDEMPOTENCY_KEY = Field("idempotencyKey", "a string", lambda v: isinstance(v, str),
                        optional=True)
