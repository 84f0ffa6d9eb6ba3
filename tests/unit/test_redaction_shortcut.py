"""The redactor's shortcut (text none of its patterns can match is returned as it is) changes no
answer: every text comes out exactly as running every pattern on it would make it."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.ops.redaction import Redactor, _masked, _masked_where_needed, may_be_sensitive

# Characters the patterns care about, and the case-folding lookalikes Python's re matches
# under (?i) (long s, dotless i, Kelvin sign), mixed with plain ones.
ALPHABET = "abcdeghiklmnoprstuwxy_ABEGHIKMNOPRSTWX0123456789 @:=+-./\"'{}&\u017f\u0131\u212a\u0130"
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
    # Keywords in other cases, digits and spaces beyond ASCII, full-width lookalikes: a trigger
    # tested case-sensitively, or on ASCII alone, would let one of these through unmasked.
    "PHONE_NUMBER=030 1234567",
    "Phone: +49 30 1234567",
    "Authorization: Bearer abc",
    "PASSWORD=hunter2",
    "POSTGRES://u:p@h/db",
    "X-Cal-Signature-256=abc",
    "BASIC dXNlcjpw",
    "Bearer\u00a0abc",
    "+\u0664\u0669 30 1234567",
    "phone=\u0660\u0663\u0660 1234567",
    "\n",
    "\u2003",
    "\uff1a\uff1d\uff0b",
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


@given(texts)
@settings(max_examples=3000)
@example("call_count1764451200123456789_5")
@example("3f00ae5c-9b2e-4d1f-8a7c-6b5d4e3f2a1b h@example.com")
@example("phone=0 1 2 3 4 5 0 0 0049301234567")
@example("token=cal_live_abcdefgh1 00 +49 30 1234567 Bearer x")
def test_each_pattern_skipped_only_where_it_cannot_match(text: str) -> None:
    # A pattern runs only on text holding its trigger, as the patterns before it left the text.
    assert _masked_where_needed(text) == _masked(text)


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
