"""What the ledger's jsonb columns cannot hold, found before it reaches PostgreSQL.

Every value a request or Cal.com's answer brings may end up in an event's `data` (jsonb):
PostgreSQL refuses a NUL character in jsonb text, and anything nested deeper than a booking
ever needs is an attack on whoever walks it next (validators, the audit's readers). The request
edge and the Cal.com client both ask here, so a refusal is a 4xx or a recorded outcome, never
a 500 at append.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32


def unstorable(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why `value` cannot be kept in the ledger's jsonb (a NUL, or nesting past `max_depth`
    levels of arrays and objects), or None when it can."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings must not contain NUL (\\u0000) characters"
            continue
        if isinstance(item, dict):
            children: list[Any] = [*item.keys(), *item.values()]
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > max_depth:
            return f"it nests arrays and objects deeper than {max_depth} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def plainly_storable(raw: bytes, *, max_depth: int = MAX_DEPTH) -> bool:
    """True when the JSON text `raw` shows by itself that `unstorable` finds nothing in any value
    parsed from it (False: it may or may not; walk the value).

    Bytes searches in C instead of a walk in Python over every item: in JSON text a NUL can
    only be written `\\u0000` (a raw control character is invalid), and no value nests deeper
    than the number of `[` and `{` in the text, quoted ones included.
    """
    return b"\\u0000" not in raw and raw.count(b"[") + raw.count(b"{") <= max_depth


def unstorable_json(raw: bytes, value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """`unstorable(value)` for `value` parsed from `raw`, skipping the walk when the text shows
    the answer (`plainly_storable`)."""
    if plainly_storable(raw, max_depth=max_depth):
        return None
    return unstorable(value, max_depth=max_depth)
