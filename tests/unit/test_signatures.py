"""Webhook signatures: ours agree with Retell's own SDK, and refuse what they should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from retell.lib.webhook_auth import symmetric

from service.api.signatures import (
    SignatureInvalid,
    calcom_signature,
    retell_signature,
    verify_calcom,
    verify_retell,
)

NOW = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
BODY = b'{"event": "call_started", "call": {"call_id": "call_1", "note": "Gr\xc3\xbc\xc3\x9fe"}}'


def test_our_retell_signature_is_the_sdks() -> None:
    assert retell_signature(BODY, "key", NOW_MS) == symmetric["sign"](BODY.decode(), "key", NOW_MS)


def test_the_sdk_verifies_what_we_accept() -> None:
    signature = retell_signature(BODY, "key", NOW_MS)
    verify_retell(BODY, signature, "key", now=NOW)
    assert symmetric["verify"](BODY.decode(), "key", signature, {"timestamp": NOW_MS})


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v=123,d=zz", "look like"),
        (f"d={'0' * 64},v={NOW_MS}", "look like"),
        (f"v={NOW_MS},d={'0' * 64}", "does not match"),
        (retell_signature(BODY, "other", NOW_MS), "does not match"),
        (retell_signature(BODY, "key", NOW_MS - 5 * 60 * 1000 - 1), "five minutes"),
        (retell_signature(BODY, "key", NOW_MS + 5 * 60 * 1000 + 1), "five minutes"),
        (retell_signature(BODY + b" ", "key", NOW_MS), "does not match"),
    ],
)
def test_retell_refuses(header: str | None, why: str) -> None:
    with pytest.raises(SignatureInvalid, match=why):
        verify_retell(BODY, header, "key", now=NOW)


def test_retell_accepts_the_five_minute_boundary() -> None:
    verify_retell(BODY, retell_signature(BODY, "key", NOW_MS - 5 * 60 * 1000), "key", now=NOW)
    later = NOW + timedelta(minutes=5)
    verify_retell(BODY, retell_signature(BODY, "key", NOW_MS), "key", now=later)


def test_calcom_signature_is_lower_case_hex_hmac_of_the_raw_body() -> None:
    signature = calcom_signature(BODY, "secret")
    assert signature == signature.lower() and len(signature) == 64
    verify_calcom(BODY, signature, "secret")


@pytest.mark.parametrize(
    "header",
    [None, "", "no-secret-provided", calcom_signature(BODY, "other"), "é" * 64],
)
def test_calcom_refuses(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify_calcom(BODY, header, "secret")
