"""Webhook signatures as Retell and Cal.com compute them, checked over the raw body bytes.

Never verify a re-serialised body: a JSON library may reorder keys or respell numbers and the
signature no longer matches (Retell's docs warn of exactly this).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta

RETELL_TOLERANCE = timedelta(minutes=5)
# retell-sdk 6.2.13, retell/lib/webhook_auth.py: `v=<unix ms>,d=<hex HMAC-SHA256>`.
_RETELL_SIGNATURE = re.compile(r"v=(\d{1,15}),d=([0-9a-f]{64})")


class SignatureInvalid(ValueError):
    """A webhook's signature is missing, malformed, expired or wrong (HTTP 401)."""


def _hmac_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def retell_signature(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """The `x-retell-signature` value Retell sends for `body` at `timestamp_ms`."""
    return f"v={timestamp_ms},d={_hmac_hex(api_key, body + str(timestamp_ms).encode())}"


def verify_retell(body: bytes, header: str | None, api_key: str, *, now: datetime) -> None:
    """Check `x-retell-signature`; raise SignatureInvalid saying why it does not hold."""
    if not header:
        raise SignatureInvalid("x-retell-signature header is missing")
    match = _RETELL_SIGNATURE.fullmatch(header.strip())
    if match is None:
        raise SignatureInvalid("x-retell-signature must look like v=<unix ms>,d=<64 hex digits>")
    timestamp_ms = int(match.group(1))
    now_ms = int(now.timestamp() * 1000)
    if abs(now_ms - timestamp_ms) > RETELL_TOLERANCE.total_seconds() * 1000:
        raise SignatureInvalid("x-retell-signature is more than five minutes from now")
    expected = _hmac_hex(api_key, body + match.group(1).encode())
    if not hmac.compare_digest(expected.encode(), match.group(2).encode()):
        raise SignatureInvalid("x-retell-signature does not match the body")


def calcom_signature(body: bytes, secret: str) -> str:
    """The `X-Cal-Signature-256` value Cal.com sends for `body`."""
    return _hmac_hex(secret, body)


def verify_calcom(body: bytes, header: str | None, secret: str) -> None:
    """Check `X-Cal-Signature-256`; raise SignatureInvalid saying why it does not hold."""
    if not header:
        raise SignatureInvalid("X-Cal-Signature-256 header is missing")
    given = header.strip().encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(calcom_signature(body, secret).encode(), given):
        raise SignatureInvalid("X-Cal-Signature-256 does not match the body")
