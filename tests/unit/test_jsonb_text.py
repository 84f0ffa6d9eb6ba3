"""Deciding from a JSON text whether its value fits the ledger's jsonb gives `unstorable`'s
answer every time: the text is trusted only when it proves the value storable."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from events.jsonb import plainly_storable, unstorable, unstorable_json

strings = st.text(alphabet='ab\x00\\u0{}[]"', max_size=6)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | strings,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(strings, children, max_size=3)
    ),
    max_leaves=40,
)


@given(values, st.integers(min_value=0, max_value=6))
@settings(max_examples=2000)
def test_the_text_gives_the_walks_answer(value: Any, max_depth: int) -> None:
    raw = orjson.dumps(value)
    assert unstorable_json(raw, value, max_depth=max_depth) == unstorable(
        value, max_depth=max_depth
    )
    if plainly_storable(raw, max_depth=max_depth):
        assert unstorable(value, max_depth=max_depth) is None


def test_a_nul_or_deep_nesting_is_never_taken_on_trust() -> None:
    nul = {"name": "a\x00b"}
    assert not plainly_storable(orjson.dumps(nul))
    assert unstorable_json(orjson.dumps(nul), nul) is not None
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    assert unstorable_json(orjson.dumps(deep), deep) is not None


def test_an_ordinary_booking_body_is_plainly_storable() -> None:
    body = {"call_id": "c1", "attendee": {"name": "Ada", "time_zone": "UTC"}, "metadata": {}}
    assert plainly_storable(orjson.dumps(body))
