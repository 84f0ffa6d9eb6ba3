"""Every e-mail address the API accepts is masked in a log line, however it is written."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.booking.attempt import plus_address
from service.booking.models import EMAIL_PATTERN
from service.ops.logs import build_handler
from service.ops.redaction import Redactor
from service.settings import Settings

# A local part made only of the mask's own character survives as a substring of its mask
# (`*@0.00` inside `****@0.00`) without anything being disclosed: leave those out.
addresses = st.from_regex(EMAIL_PATTERN, fullmatch=True).filter(
    lambda a: set(a.partition("@")[0]) != {"*"}
)
# How an address ends up in a line: prose, key=value, a repr, JSON, angle brackets, a URL query.
TEMPLATES = [
    "booking for {} now",
    "{}",
    "email={}",
    "attendee_email: {}",
    "{{'email': '{}'}}",
    '{{"email": "{}"}}',
    "To: Hans <{}>",
    "(sent to {})",
    "GET /x?email={}&y=1",
]


@pytest.mark.parametrize(
    "address",
    [
        '"hans schuster"@example.com'.replace(" ", "."),
        '"h"@example.com',
        "hans+termin@example.com",
        "ab!c@example.com",
        "h=C3=A4ns@example.com",
        "hänsel@exämple.de",
        "a@b.cd",
        "x@[10.0.0.1].ab",
        "o'brien@example.co.uk",
        "user@sub.domain-with-dash.museum",
        "call=3A77@example.com",
    ],
)
@pytest.mark.parametrize("template", TEMPLATES)
def test_unusual_addresses_are_masked(address: str, template: str) -> None:
    assert re.fullmatch(EMAIL_PATTERN, address)
    line = Redactor().text(template.format(address))
    assert address not in line
    assert "***@" in line


def test_fallback_plus_addresses_are_masked_whole() -> None:
    address = plus_address("termin@example.com", "call:77")
    line = Redactor().text(f"sent {address}")
    assert line == "sent t***@example.com"


@settings(max_examples=300)
@given(addresses, st.sampled_from(TEMPLATES))
def test_no_accepted_address_survives_redaction(address: str, template: str) -> None:
    line = Redactor().text(template.format(address))
    assert address not in line


@settings(max_examples=100)
@given(addresses)
def test_no_accepted_address_survives_a_json_log_line(address: str) -> None:
    stream = io.StringIO()
    handler = build_handler(Settings(log_format="json"), stream)
    logger = logging.getLogger("test_redaction_emails")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("booking for %s", address, extra={"attendee": {"email": address}})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert address not in line
    assert json.dumps(address)[1:-1] not in line
    assert json.dumps(address, ensure_ascii=False)[1:-1] not in line
