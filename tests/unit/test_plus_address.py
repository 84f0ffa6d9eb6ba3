"""Fallback addresses: one per call id, never shared (Cal.com deduplicates by attendee e-mail)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.booking.attempt import MAX_LOCAL_PART_OCTETS, plus_address
from service.booking.models import EMAIL_PATTERN
from service.settings import Settings

CALL_ID = r"[A-Za-z0-9_.:-]{1,128}"
# validator.js isEmail's local part (Cal.com's check): a dot-atom of RFC 5322 atext.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
DOT_ATOM = re.compile(rf"{ATEXT}(?:\.{ATEXT})*")
MAILBOXES = ["termin@example.com", "t@example.com", "x" * 32 + "@example.com"]

call_ids = st.from_regex(rf"\A{CALL_ID}\Z")


def test_call_ids_differing_in_a_dropped_character_get_different_addresses() -> None:
    assert plus_address("termin@example.com", "call:77") != plus_address(
        "termin@example.com", "call77"
    )


@pytest.mark.parametrize("call_id", ["call_927bf219b2cc20cd24dc97c9f0b", "c-1", "A_b"])
def test_plain_call_ids_stay_readable(call_id: str) -> None:
    assert plus_address("termin@example.com", call_id) == f"termin+{call_id}@example.com"


def test_other_characters_are_escaped_readably() -> None:
    assert plus_address("termin@example.com", "call:77") == "termin+call=3A77@example.com"
    assert plus_address("termin@example.com", "a.b") == "termin+a=2Eb@example.com"


@given(st.lists(call_ids, min_size=2, max_size=20, unique=True), st.sampled_from(MAILBOXES))
def test_distinct_call_ids_never_share_an_address(ids: list[str], mailbox: str) -> None:
    addresses = [plus_address(mailbox, call_id) for call_id in ids]
    assert len(set(addresses)) == len(ids)


@given(call_ids, st.sampled_from(MAILBOXES))
def test_every_address_is_one_the_api_and_calcom_accept(call_id: str, mailbox: str) -> None:
    address = plus_address(mailbox, call_id)
    local, _, domain = address.rpartition("@")
    assert len(local.encode()) <= MAX_LOCAL_PART_OCTETS
    assert DOT_ATOM.fullmatch(local), address
    assert re.fullmatch(EMAIL_PATTERN, address), address
    assert domain == "example.com"


@given(call_ids, call_ids)
def test_injective_across_the_three_shapes(a: str, b: str) -> None:
    # Long ids are hashed; a long id and a short one, or two escaped ids, still differ.
    if a != b:
        assert plus_address("termin@example.com", a) != plus_address("termin@example.com", b)


@pytest.mark.parametrize("mailbox", ["x" * 33 + "@example.com", "termin", "ter min@example.com"])
def test_a_fallback_mailbox_without_room_for_a_tag_stops_the_start(mailbox: str) -> None:
    with pytest.raises(ValidationError, match="BOOKING_GUARD_FALLBACK_EMAIL"):
        Settings(fallback_email=mailbox)
