"""Log lines: one JSON object each, with the request's ids, no personal data, no secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from service.ops.logs import bind, build_handler, log_scope, use_json
from service.ops.redaction import Redactor, mask_phone
from service.settings import Settings


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


def _settings(**values: Any) -> Settings:
    return Settings(database_url="postgresql://bg:hunter2secret@db/bg", **values)


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, Captured]]:
    stream = io.StringIO()
    settings = _settings(
        log_format="json",
        calcom_api_key=SecretStr("cal_live_0123456789abcdef"),
        api_tokens=["producer-token-1"],
        calcom_webhook_secret=SecretStr("whsec_abcdefgh"),
    )
    handler = build_handler(settings, stream)
    logger = logging.getLogger("test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, Captured(stream)
    finally:
        logger.removeHandler(handler)


def test_every_line_is_one_json_object_with_the_bound_ids(
    capture: tuple[logging.Logger, Captured],
) -> None:
    logger, out = capture
    with log_scope(correlation_id="corr-1"):
        bind(call_id="call_687", attempt_id="5b0c")
        logger.info("calling Cal.com")
        logger.warning("slow answer", extra={"seconds": 2.5})
    logger.info("after the request")
    first, second, after = out.records()
    assert first["message"] == "calling Cal.com"
    assert first["level"] == "info"
    assert first["logger"] == "test_logs"
    ids = ("correlation_id", "call_id", "attempt_id")
    assert {k: first[k] for k in ids} == {
        "correlation_id": "corr-1",
        "call_id": "call_687",
        "attempt_id": "5b0c",
    }
    assert second["seconds"] == 2.5 and second["call_id"] == "call_687"
    assert not any(k in after for k in ids)


async def test_ids_do_not_leak_between_concurrent_tasks(
    capture: tuple[logging.Logger, Captured],
) -> None:
    logger, out = capture
    both = asyncio.Event()
    arrived = 0

    async def request(call_id: str) -> None:
        nonlocal arrived
        bind(call_id=call_id)
        arrived += 1
        if arrived == 2:
            both.set()
        await both.wait()
        logger.info("booked")

    await asyncio.gather(
        asyncio.create_task(request("call_a")), asyncio.create_task(request("call_b"))
    )
    assert sorted(r["call_id"] for r in out.records()) == ["call_a", "call_b"]


def test_emails_and_phone_numbers_are_masked(capture: tuple[logging.Logger, Captured]) -> None:
    logger, out = capture
    logger.info(
        "attendee hans.schuster@example.com phone +49 30 1234567 start 2025-10-10T06:00:00+02:00",
        extra={"attendee": {"email": "termin+call_688@example.com", "phone_number": "030 1234567"}},
    )
    (record,) = out.records()
    assert record["message"] == (
        "attendee h***@example.com phone +4********67 start 2025-10-10T06:00:00+02:00"
    )
    assert record["attendee"] == {"email": "t***@example.com", "phone_number": "0*******67"}
    assert "schuster" not in out.stream.getvalue()
    assert "1234567" not in out.stream.getvalue()

    logger.info("an integer", extra={"phone": 4930123456, "phone_count": True})
    assert out.records()[-1]["phone"] == "4*******56"  # masked as the same digits as text are
    assert out.records()[-1]["phone_count"] is True
    assert "4930123456" not in out.stream.getvalue()


def test_secrets_are_never_written(capture: tuple[logging.Logger, Captured]) -> None:
    logger, out = capture
    logger.info("headers %s", {"Authorization": "Bearer producer-token-1", "cal-api-version": "x"})
    logger.info("key cal_live_0123456789abcdef, dsn postgresql://bg:hunter2secret@db/bg")
    logger.info("signed", extra={"calcom_webhook_secret": "whsec_abcdefgh", "token": "t0k3n"})
    try:
        raise ValueError("api_key=cal_live_0123456789abcdef rejected")
    except ValueError:
        logger.exception("Cal.com refused")
    text = out.stream.getvalue()
    for secret in (
        "producer-token-1",
        "cal_live_0123456789abcdef",
        "hunter2secret",
        "whsec_abcdefgh",
        "t0k3n",
    ):
        assert secret not in text
    assert "[redacted]" in out.records()[0]["message"]
    assert "ValueError" in out.records()[-1]["exception"]


def test_the_redactor_leaves_ids_and_times_alone() -> None:
    r = Redactor()
    text = (
        "attempt 00123456-7890-4abc-8def-001234567890 at 2025-10-06T09:04:27.123Z "
        "position 1234567 call call_39d2ade6f4fc16c51110ca49cdf cursor 812.77"
    )
    assert r.text(text) == text
    assert mask_phone("+4930123456") == "+4*******56"


def test_human_format_on_a_terminal_json_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_json("auto", io.StringIO())
    assert not use_json("auto", Terminal())
    assert use_json("json", Terminal())
    assert not use_json("human", io.StringIO())

    stream = Terminal()
    handler = build_handler(_settings(log_format="auto"), stream)
    record = logging.LogRecord(
        "service.booking.workflow", logging.WARNING, __file__, 1, "to x@example.com", None, None
    )
    record.call_id = "call_1"
    handler.handle(record)
    line = stream.getvalue()
    assert "WARNING service.booking.workflow: to x***@example.com  call=call_1" in line
    assert not line.startswith("{")


def test_structured_values_keep_their_shape_and_lose_personal_data() -> None:
    r = Redactor()
    assert r.value("status", 201) == 201
    assert r.value("duration_ms", 12.5) == 12.5
    assert r.value("held", True) is True
    assert r.value("booking_id", None) is None
    assert r.value("ids", [7, "x@example.com"]) == [7, "x***@example.com"]
    assert r.value("calcom", {"status": 409, "to": ("h@example.com", 2)}) == {
        "status": 409,
        "to": ["h***@example.com", 2],
    }
    assert r.value("api_key", 12345) == "[redacted]"
