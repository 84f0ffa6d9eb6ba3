"""The redactor's shortcut (text none of its patterns can match is returned as it is) changes no
answer: every text comes out exactly as running every pattern on it would make it."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.ops.redaction import Redactor, _masked, may_be_sensitive

# Characters the patterns care about, and the case-folding lookalikes Python's re matches
# under (?i) (long s, dotless i, Kelvin sign), mixed with plain ones.
ALPHABET = "abcdeiklnoprstuy_ABEIKRS0123456789 @:=+-./\"'{}&\u017f\u0131\u212a\u0130"
PIECES = [
    "bearer ",
    "Basic ",
    "BEARER abc.def",
    "ba\u017fic x",
    "cal_live_abcdefgh1",
    "key_abcdefghijklmnop",
    "postgresql://u:p@h/db",
    "phone_number=030 1234567",
    "+49 30 1234567",
    "0049301234567",
    "h@example.com",
    "token=abc",
    "00",
]
texts = st.lists(
    st.one_of(st.text(alphabet=ALPHABET, max_size=12), st.sampled_from(PIECES)), max_size=6
).map("".join)


@given(texts)
@settings(max_examples=3000)
@example("POST /v1/booking-attempts 201 3.2 ms")
@example("Authorization: Bearer abc")
def test_the_shortcut_gives_what_every_pattern_gives(text: str) -> None:
    assert Redactor().text(text) == _masked(text)


@pytest.mark.parametrize(
    "text",
    [
        "3033a7b6-b998-475c-8ae8-24cec240e316",
        "POST /v1/booking-attempts 201 3.2 ms",
        "/v1/booking-attempts",
        "call_t0x123_17",
    ],
)
def test_ids_and_routes_take_the_shortcut(text: str) -> None:
    assert not may_be_sensitive(text)
    assert Redactor().text(text) == text


@pytest.mark.parametrize(
    "text", ["x@y.co", "a:b", "a=b", "+4930", "1002", "cal_x", "key_x", "Bearer", "ba\u017fic"]
)
def test_anything_a_pattern_may_match_is_looked_at(text: str) -> None:
    assert may_be_sensitive(text)
