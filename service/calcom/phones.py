"""Phone numbers as Cal.com checks them, so a number we send is one Cal.com accepts.

Cal.com validates `attendee.phoneNumber` with libphonenumber-js's `isValidPhoneNumber`, and an
invalid number is a 400 for the whole booking (shared/contracts/README.md, "Phone numbers").
`phonenumbers` is the Python port of the same Google library, so checking here first turns that
400 into a clear refusal of the producer's field, or lets the Retell adapter drop a caller id
such as `+266696687` (right shape, no such number) and book by e-mail instead.
"""

from __future__ import annotations

import phonenumbers

# A number in any international spelling is at most this long; longer text is not parsed.
MAX_PHONE_TEXT = 32


def e164(text: str) -> str | None:
    """`text` as E.164 (`+4930123456`) when it is a valid number in international form, else None.

    Only international numbers (leading `+`) count: Cal.com is called without a default region,
    so a national number such as `030 123456` is as invalid there as here.
    """
    if len(text) > MAX_PHONE_TEXT or not text.lstrip().startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
