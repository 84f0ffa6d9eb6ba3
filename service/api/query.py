"""Reading query and path parameters strictly: ASCII digits, bounded integers, sane instants.

`str.isdigit()` takes "²" and `int()` takes "٣" (Arabic-Indic 3); asyncpg refuses integers
beyond 64 bits and PostgreSQL refuses text with NUL, each a 500 once it got that far. These
helpers refuse all of that first, with a message naming the parameter.
"""

from __future__ import annotations

from datetime import datetime

from service.booking.instants import check_representable

MAX_PATH_PARAMETER_LENGTH = 256


class InvalidQuery(ValueError):
    """A query or path parameter that cannot be read; the message names it."""


def is_ascii_digits(text: str) -> bool:
    """Whether `text` is one or more of 0-9 (no other script's digits, no sign)."""
    return text.isascii() and text.isdigit()


def bounded_int(text: str, *, name: str, low: int, high: int) -> int:
    """`text` as an integer from `low` to `high`, or InvalidQuery naming `name`."""
    # The length check first: int() of a megabyte of digits is slow (CPython limits it to 4300).
    if not is_ascii_digits(text) or len(text) > 20 or not low <= int(text) <= high:
        raise InvalidQuery(f"{name} must be an integer from {low} to {high}, got {text[:40]!r}")
    return int(text)


def moment(text: str, *, name: str) -> datetime:
    """An RFC 3339 time with an offset whose UTC instant is representable, or InvalidQuery."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidQuery(f"{name} must be an RFC 3339 time, got {text[:60]!r}") from e
    if value.tzinfo is None:
        raise InvalidQuery(f"{name} needs a time zone offset (e.g. Z), got {text[:60]!r}")
    try:
        return check_representable(value)
    except ValueError as e:
        raise InvalidQuery(f"{name}: {e}, got {text[:60]!r}") from e


def path_text(value: str, *, name: str) -> str:
    """A path parameter as text PostgreSQL can compare: no control characters, bounded length."""
    if len(value) > MAX_PATH_PARAMETER_LENGTH or not value.isprintable():
        raise InvalidQuery(
            f"{name} must be 1 to {MAX_PATH_PARAMETER_LENGTH} printable characters "
            "(no NUL or control characters)"
        )
    return value
