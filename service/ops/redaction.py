"""What a log line may not carry: e-mail addresses and phone numbers are masked, secrets removed.

Applied by the log formatters to every message, exception text and extra field, so a careless
`log.info("body %s", body)` anywhere still writes `h***@example.com`, `+49*******56` and
`Bearer [redacted]`. The patterns are deliberately narrow where a wide one would mangle the ids
and times that make a log useful: a phone number needs a leading `+` or `00`, or a key that says
it is one (`phone_number=030 1234567`); dates, uuids and positions are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REDACTED = "[redacted]"

# Every address the API accepts (models.EMAIL_PATTERN: up to 64 of anything but "@" and white
# space, "@", a domain with a dot): quoted local parts, sub-addresses, "=" escapes, non-ASCII.
# The local part is whatever touches the "@" (a word-character pattern left `ab!` of `ab!c@d.com`
# and `"x y"`-style quotes in the clear). A `key=` or `key:` that names an address is kept, so
# `email=h***@example.com` still reads; of the rest only the first character survives.
_EMAIL = re.compile(
    r"(?P<key>(?i:\b(?:e-?mail|attendee_?email|email_?address|to|from)[=:]))?"
    r"(?P<local>[^\s@]{1,64})@(?P<domain>[^\s@]{1,255}\.[^\s@]{2,63})"
)
_PHONE = re.compile(r"(?<![\w+-])(?:\+\d(?:[\s().\-/]?\d){6,14}|00\d{8,13})(?![\w-])")
_PHONE_FIELD = re.compile(
    r"""(?i)((?:attendee_?)?phone(?:_?number)?["']?\s*[:=]\s*["']?)([^"',}\]\s&][^"',}\]&]*\d)"""
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_SECRET_FIELD = re.compile(
    r"""(?i)(?<![a-z0-9])((?:authorization|x-cal-signature-256|x-retell-signature|api[_-]?key|apikey|"""
    r"""access[_-]?token|token|tokens|secret|password|passwd|webhook[_-]?secret)"""
    r"""["']?\s*[:=]\s*["']?)(?!\[redacted\]|(?:bearer|basic)\s)([^"',}\]\s&]+)"""
)
_API_KEY = re.compile(r"\b(?:cal_(?:live_|test_)?[A-Za-z0-9]{8,}|key_[A-Za-z0-9]{16,})\b")
_DSN_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)[^@\s]+@")
# What each pattern above cannot match without: "bearer"/"basic" in any case (_BEARER), ":" or
# "=" (_SECRET_FIELD, _DSN_PASSWORD, _PHONE_FIELD), "cal_"/"key_" (_API_KEY), "+" or "00"
# (_PHONE), "@" (_EMAIL). Text with none of them is returned as it is: most of a log line (ids,
# routes, statuses) is such text, and the patterns cost tens of microseconds a string even when
# they find nothing (_EMAIL tries every start for a 64-character local part), which made the
# access line the largest single cost of a booking's own Python (bench/README.md, issue 16
# item 3). Only "b" and "B" match `(?i)b` in Python's re, so a text without either cannot hold
# the word _BEARER looks for, and the case-blind search runs only on text that has one.
_TRIGGERS = ("@", ":", "=", "+", "00", "cal_", "key_")
_AUTH_WORD = re.compile(r"(?i)bearer|basic")


def may_be_sensitive(text: str) -> bool:
    """False only when no pattern of `Redactor.text` can match anything in `text`."""
    for trigger in _TRIGGERS:
        if trigger in text:
            return True
    return ("b" in text or "B" in text) and _AUTH_WORD.search(text) is not None


SECRET_KEYS = frozenset(
    {
        "authorization",
        "api_key",
        "apikey",
        "calcom_api_key",
        "retell_api_key",
        "calcom_webhook_secret",
        "api_tokens",
        "token",
        "tokens",
        "secret",
        "password",
        "x-cal-signature-256",
        "x-retell-signature",
    }
)


def mask_email(match: re.Match[str]) -> str:
    """`hans@example.com` -> `h***@example.com`; the domain stays, it names no person."""
    return f"{match.group('key') or ''}{match.group('local')[0]}***@{match.group('domain')}"


def mask_phone(text: str) -> str:
    """Keep a leading `+` and the last two digits: `+4930123456` -> `+4********56`."""
    digits = [c for c in text if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    prefix = "+" if text.startswith("+") else ""
    return f"{prefix}{digits[0]}{'*' * (len(digits) - 3)}{''.join(digits[-2:])}"


class Redactor:
    """Masks personal data and removes secrets from text; knows the configured secret values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def text(self, text: str) -> str:
        """`text` with secrets removed and e-mail addresses and phone numbers masked."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        if not may_be_sensitive(text):
            return text
        return _masked_where_needed(text)

    def value(self, key: str, value: Any) -> Any:
        """A structured field's value, redacted by its key and its content."""
        lowered = key.lower()
        if lowered in SECRET_KEYS or "secret" in lowered or "password" in lowered:
            return REDACTED
        if "phone" in lowered and (isinstance(value, str) or type(value) is int):
            # A number given as an integer (a JSON body that left out the quotes) is a phone
            # number all the same.
            return mask_phone(str(value))
        if isinstance(value, str):
            return self.text(value)
        # Before the abstract classes, whose checks cost more than the rest of a number's way:
        # no number is a Mapping or a Sequence.
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, Mapping):
            return {str(k): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            return [self.value(key, v) for v in value]
        return self.text(str(value))


def _masked_where_needed(text: str) -> str:
    """`_masked(text)`, each pattern run only on text holding what it cannot match without.

    The triggers of `may_be_sensitive`, one pattern at a time, checked on the text as the
    patterns before left it: a uuid or a call id with "00" in it (about one uuid in ten) would
    otherwise pay for every pattern, the e-mail one above all, for the phone one's sake.
    """
    if ("b" in text or "B" in text) and _AUTH_WORD.search(text) is not None:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if ":" in text or "=" in text:
        text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    if "cal_" in text or "key_" in text:
        text = _API_KEY.sub(REDACTED, text)
    if ":" in text:
        text = _DSN_PASSWORD.sub(r"\1***@", text)
    if ":" in text or "=" in text:
        text = _PHONE_FIELD.sub(lambda m: f"{m.group(1)}{mask_phone(m.group(2))}", text)
    if "+" in text or "00" in text:
        text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    if "@" in text:
        text = _EMAIL.sub(mask_email, text)
    return text


def _masked(text: str) -> str:
    """Every pattern applied in turn: `Redactor.text` once the configured secrets are out."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _API_KEY.sub(REDACTED, text)
    text = _DSN_PASSWORD.sub(r"\1***@", text)
    text = _PHONE_FIELD.sub(lambda m: f"{m.group(1)}{mask_phone(m.group(2))}", text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    return _EMAIL.sub(mask_email, text)
