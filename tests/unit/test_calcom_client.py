"""HttpCalcomClient against aioresponses: headers, bodies, retries and error translation."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from service.calcom.client import HttpCalcomClient
from service.calcom.errors import calcom_error
from service.calcom.port import (
    CalcomAuthFailed,
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
    CreateBooking,
)

BASE = "https://calcom.test"
BOOKINGS = f"{BASE}/v2/bookings"
SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)
TAKEN = "User either already has booking at this time or is not available"
REQUEST = CreateBooking(
    event_type_id=1001,
    start=SLOT,
    attendee_name="Hans Schuster",
    attendee_time_zone="Europe/Berlin",
    attendee_email="termin+call_39d2@example.com",
    metadata={"call_id": "call_39d2ade6f4fc16c51110ca49cdf", "attempt_id": "a-1"},
)


def booking(uid: str = "8Fxv4pCqnb1Jva1w9wn5wX", start: str = "2025-10-10T06:00:00.000Z") -> Any:
    """Cal.com's success envelope around a trimmed booking."""
    return {
        "status": "success",
        "data": {
            "id": 11489895,
            "uid": uid,
            "status": "accepted",
            "start": start,
            "end": "2025-10-10T06:30:00.000Z",
            "createdAt": "2025-10-06T09:05:21.002Z",
            "eventType": {"id": 1001, "slug": "round-robin-consultation"},
            "metadata": {"call_id": "call_39d2ade6f4fc16c51110ca49cdf"},
            "attendees": [{"name": "Hans Schuster", "email": "termin+call_39d2@example.com"}],
        },
    }


def envelope(status: int, code: str, message: str) -> dict[str, Any]:
    """Cal.com's error envelope."""
    return {
        "status": "error",
        "timestamp": "2025-10-06T09:40:00.000Z",
        "path": "/v2/bookings",
        "error": {"code": code, "message": message, "details": {"statusCode": status}},
    }


@dataclass
class Recorder:
    sleeps: list[float] = field(default_factory=list)
    calls: list[tuple[str, str, int | None, int]] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def observe(
        self, method: str, route: str, status: int | None, seconds: float, attempt: int
    ) -> None:
        assert seconds >= 0
        self.calls.append((method, route, status, attempt))


class CompatibleResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's `stream_writer` (its #289)."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    monkeypatch.setattr("aioresponses.core.ClientResponse", CompatibleResponse)
    with aioresponses() as m:
        yield m


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(recorder: Recorder) -> AsyncIterator[HttpCalcomClient]:
    calcom = HttpCalcomClient(
        api_key="cal_test_key",
        base_url=BASE,
        sleep=recorder.sleep,
        jitter=lambda: 0.5,
        backoff_base=0.2,
        on_request=recorder.observe,
    )
    yield calcom
    await calcom.close()


def sent(mocked: aioresponses, method: str = "POST", url: str = BOOKINGS) -> list[Any]:
    """The calls aioresponses saw for one method and URL."""
    return list(mocked.requests[(method, URL(url))])


async def test_sends_bearer_key_version_header_and_calcom_body(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(BOOKINGS, status=201, payload=booking())

    result = await client.create_booking(REQUEST)

    assert result.uid == "8Fxv4pCqnb1Jva1w9wn5wX"
    (call,) = sent(mocked)
    assert call.kwargs["headers"]["Authorization"] == "Bearer cal_test_key"
    assert call.kwargs["headers"]["cal-api-version"] == "2024-08-13"
    assert call.kwargs["json"] == {
        "start": "2025-10-10T06:00:00.000Z",
        "eventTypeId": 1001,
        "attendee": {
            "name": "Hans Schuster",
            "timeZone": "Europe/Berlin",
            "email": "termin+call_39d2@example.com",
        },
        "metadata": {"call_id": "call_39d2ade6f4fc16c51110ca49cdf", "attempt_id": "a-1"},
    }
    assert call.kwargs["allow_redirects"] is False


async def test_retries_a_500_then_returns_the_booking(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    mocked.post(BOOKINGS, status=500, payload=envelope(500, "InternalServerErrorException", "x"))
    mocked.post(BOOKINGS, status=201, payload=booking())

    result = await client.create_booking(REQUEST)

    assert result.uid == "8Fxv4pCqnb1Jva1w9wn5wX"
    assert recorder.sleeps == [0.5 * 0.2]  # full jitter of the first backoff step
    assert recorder.calls == [
        ("POST", "/v2/bookings", 500, 1),
        ("POST", "/v2/bookings", 201, 2),
    ]
    assert (client.requests_total, client.retries_total) == (2, 1)
    assert client.seconds_total >= 0


async def test_429_waits_as_long_as_retry_after_says(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    throttled = envelope(429, "ThrottlerException", "ThrottlerException: Too Many Requests")
    mocked.post(BOOKINGS, status=429, payload=throttled, headers={"Retry-After": "2"})
    mocked.post(BOOKINGS, status=201, payload=booking())

    await client.create_booking(REQUEST)

    assert recorder.sleeps == [2.0]


async def test_429_without_any_header_backs_off_exponentially(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    throttled = envelope(429, "ThrottlerException", "ThrottlerException: Too Many Requests")
    mocked.post(BOOKINGS, status=429, payload=throttled, repeat=2)
    mocked.post(BOOKINGS, status=201, payload=booking())

    await client.create_booking(REQUEST)

    assert recorder.sleeps == [0.5 * 0.2, 0.5 * 0.4]


async def test_429_honours_calcoms_reset_header_instead_of_a_doomed_retry(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    # Cal.com sends no Retry-After; a 429 blocks the key until X-RateLimit-Reset-Default.
    throttled = envelope(429, "ThrottlerException", "CustomThrottlerGuard - Too many requests.")
    headers = {"X-RateLimit-Remaining-Default": "0", "X-RateLimit-Reset-Default": "40"}
    mocked.post(BOOKINGS, status=429, payload=throttled, headers=headers)

    with pytest.raises(CalcomUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert (raised.value.status, raised.value.retry_after, raised.value.attempts) == (429, 40, 1)
    assert recorder.sleeps == []


async def test_retry_after_beyond_the_cap_gives_up_at_once(
    mocked: aioresponses, recorder: Recorder
) -> None:
    throttled = envelope(429, "ThrottlerException", "ThrottlerException: Too Many Requests")
    mocked.post(BOOKINGS, status=429, payload=throttled, headers={"Retry-After": "60"})
    calcom = HttpCalcomClient(
        api_key="k", base_url=BASE, sleep=recorder.sleep, max_retry_after=10.0
    )

    with pytest.raises(CalcomUnavailable) as raised:
        await calcom.create_booking(REQUEST)
    await calcom.close()

    assert (raised.value.status, raised.value.retry_after, raised.value.attempts) == (429, 60, 1)
    assert recorder.sleeps == []


async def test_400_is_not_retried_and_keeps_calcom_words(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    message = "Attempting to book a meeting in the past."
    mocked.post(BOOKINGS, status=400, payload=envelope(400, "BadRequestException", message))

    with pytest.raises(CalcomRejected) as raised:
        await client.create_booking(REQUEST)

    assert (raised.value.status, raised.value.code) == (400, "BadRequestException")
    assert raised.value.message == message
    assert len(sent(mocked)) == 1
    assert recorder.sleeps == []


async def test_400_not_available_is_a_taken_slot(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(BOOKINGS, status=400, payload=envelope(400, "BadRequestException", TAKEN))

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert raised.value.message == TAKEN
    assert raised.value.earlier_attempt_uncertain is False


async def test_bare_409_race_is_a_taken_slot(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(
        BOOKINGS, status=409, payload={"statusCode": 409, "message": "booking_conflict_error"}
    )

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert (raised.value.status, raised.value.code) == (409, "booking_conflict_error")
    assert len(sent(mocked)) == 1


async def test_timeouts_end_as_retryable_unavailable(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    mocked.post(BOOKINGS, exception=TimeoutError(), repeat=True)

    with pytest.raises(CalcomUnavailable) as raised:
        await client.create_booking(REQUEST)

    error = raised.value
    assert (error.status, error.code, error.attempts) == (None, "timeout", 3)
    assert isinstance(error.__cause__, TimeoutError)
    assert [status for _, _, status, _ in recorder.calls] == [None, None, None]
    assert len(recorder.sleeps) == 2


async def test_dropped_connection_is_retried(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(BOOKINGS, exception=aiohttp.ServerDisconnectedError())
    mocked.post(BOOKINGS, status=201, payload=booking())

    result = await client.create_booking(REQUEST)

    assert result.uid == "8Fxv4pCqnb1Jva1w9wn5wX"
    assert len(sent(mocked)) == 2


async def test_taken_slot_after_a_dropped_create_may_be_our_own_booking(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(BOOKINGS, exception=aiohttp.ServerDisconnectedError())
    mocked.post(BOOKINGS, status=400, payload=envelope(400, "BadRequestException", TAKEN))

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert raised.value.earlier_attempt_uncertain is True
    assert raised.value.attempts == 2


async def test_exhausted_5xx_retries_raise_unavailable_with_the_status(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    answer = envelope(503, "ServiceUnavailableException", "Service Unavailable")
    mocked.post(BOOKINGS, status=503, payload=answer, repeat=True)

    with pytest.raises(CalcomUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert (raised.value.status, raised.value.attempts) == (503, 3)
    assert raised.value.message == "Service Unavailable"
    assert len(sent(mocked)) == 3


async def test_unreadable_success_is_not_retried(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    mocked.post(BOOKINGS, status=201, body="<html>proxy</html>", content_type="text/html")

    with pytest.raises(CalcomUnavailable) as raised:
        await client.create_booking(REQUEST)

    assert raised.value.code == "invalid_response"
    assert len(sent(mocked)) == 1


async def test_find_bookings_filters_by_attendee_event_type_and_exact_start(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    other = booking("later", start="2025-10-10T07:00:00.000Z")["data"]
    page = {"status": "success", "data": [booking()["data"], other], "pagination": {}}
    mocked.get(re.compile(rf"^{re.escape(BOOKINGS)}\?.*$"), status=200, payload=page)

    found = await client.find_bookings(
        attendee_email="termin+call_39d2@example.com", event_type_id=1001, start=SLOT
    )

    assert [b.uid for b in found] == ["8Fxv4pCqnb1Jva1w9wn5wX"]
    ((_, url),) = mocked.requests
    assert url.query["attendeeEmail"] == "termin+call_39d2@example.com"
    assert url.query["eventTypeId"] == "1001"
    assert url.query["afterStart"] == "2025-10-10T06:00:00.000Z"
    assert url.query["beforeEnd"] == "2025-10-11T06:00:00.000Z"


async def test_list_bookings_pages_until_a_short_page_and_keeps_each_uid_once(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    # No pagination object: a page shorter than `take` is the last. A uid seen on two pages (the
    # list moved between requests) is one booking.
    first = [booking("a")["data"], booking("b")["data"]]
    second = [booking("b")["data"]]
    listing = re.compile(rf"^{re.escape(BOOKINGS)}\?.*$")
    mocked.get(listing, status=200, payload={"status": "success", "data": first})
    mocked.get(listing, status=200, payload={"status": "success", "data": second})

    found = await client.list_bookings(
        created_after=datetime(2025, 10, 6, tzinfo=UTC),
        created_before=datetime(2025, 10, 7, tzinfo=UTC),
        take=2,
    )

    assert [b.uid for b in found] == ["a", "b"]
    queries = [url.query for (_, url) in mocked.requests]
    assert [q["skip"] for q in queries] == ["0", "2"]
    query = queries[0]
    assert query["afterCreatedAt"] == "2025-10-06T00:00:00.000Z"
    assert query["beforeCreatedAt"] == "2025-10-07T00:00:00.000Z"
    assert (query["status"], query["sortCreated"]) == ("upcoming,past,cancelled", "asc")


async def test_get_and_cancel_address_the_booking_by_uid(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder
) -> None:
    mocked.get(f"{BOOKINGS}/abc", status=200, payload=booking("abc"))
    mocked.post(f"{BOOKINGS}/abc/cancel", status=200, payload=booking("abc"))

    assert (await client.get_booking("abc")).uid == "abc"
    assert (await client.cancel_booking("abc", reason="caller changed plans")).uid == "abc"

    (cancel,) = sent(mocked, "POST", f"{BOOKINGS}/abc/cancel")
    assert cancel.kwargs["json"] == {"cancellationReason": "caller changed plans"}
    assert cancel.kwargs["headers"]["cal-api-version"] == "2024-08-13"
    assert [route for _, route, _, _ in recorder.calls] == [
        "/v2/bookings/{uid}",
        "/v2/bookings/{uid}/cancel",
    ]


async def test_not_found_is_rejected_with_calcom_code(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    message = "Booking with uid=nope was not found in the database"
    mocked.get(f"{BOOKINGS}/nope", status=404, payload=envelope(404, "NotFoundException", message))

    with pytest.raises(CalcomRejected) as raised:
        await client.get_booking("nope")

    assert (raised.value.status, raised.value.code, raised.value.message) == (
        404,
        "NotFoundException",
        message,
    )


def test_refuses_a_base_url_with_v2() -> None:
    with pytest.raises(ValueError, match="without /v2"):
        HttpCalcomClient(api_key="k", base_url="https://api.cal.com/v2")


def test_translates_a_list_of_validation_messages() -> None:
    body = {"statusCode": 400, "message": ["start must be a date", "x"], "error": "Bad Request"}

    error = calcom_error(400, body)

    assert isinstance(error, CalcomRejected)
    assert (error.message, error.code) == ("start must be a date; x", "Bad Request")


def test_translates_the_team_wording_of_a_taken_slot() -> None:
    message = "One of the hosts either already has booking at this time or is not available"

    error = calcom_error(400, envelope(400, "BadRequestException", message))

    assert isinstance(error, CalcomSlotUnavailable)


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_is_not_retried_and_is_an_auth_failure(
    client: HttpCalcomClient, mocked: aioresponses, recorder: Recorder, status: int
) -> None:
    message = "CustomThrottlerGuard - Invalid API Key"
    mocked.post(BOOKINGS, status=status, payload=envelope(status, "UnauthorizedException", message))

    with pytest.raises(CalcomAuthFailed) as raised:
        await client.create_booking(REQUEST)

    assert isinstance(raised.value, CalcomUnavailable)  # retryable once the key is fixed
    assert (raised.value.status, raised.value.message) == (status, message)
    assert len(sent(mocked)) == 1
    assert client.key_prefix == "cal_test…"


def calcom_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.calcom.client"]


async def test_each_failed_request_is_a_warning_naming_status_and_reason(
    client: HttpCalcomClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    answer = envelope(503, "ServiceUnavailableException", "Service Unavailable")
    mocked.post(BOOKINGS, status=503, payload=answer, repeat=True)
    caplog.set_level(logging.INFO, logger="service.calcom.client")

    with pytest.raises(CalcomUnavailable):
        await client.create_booking(REQUEST)

    lines = calcom_lines(caplog)
    assert [r.levelno for r in lines] == [logging.WARNING] * 3
    messages = [r.getMessage() for r in lines]
    for n, message in enumerate(messages, start=1):
        assert f"POST /v2/bookings failed (attempt {n} of 3): HTTP 503" in message, message
        assert "ServiceUnavailableException: Service Unavailable" in message, message
        assert "cal_test_key" not in message
    assert messages[0].endswith("retrying") and messages[-1].endswith("giving up")


async def test_a_timeout_and_a_lost_connection_are_logged_in_words(
    client: HttpCalcomClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(BOOKINGS, exception=TimeoutError())
    mocked.post(BOOKINGS, exception=aiohttp.ServerDisconnectedError())
    mocked.post(BOOKINGS, status=201, payload=booking())
    caplog.set_level(logging.INFO, logger="service.calcom.client")

    await client.create_booking(REQUEST)

    first, second = (r.getMessage() for r in calcom_lines(caplog))
    assert "no answer, timeout: Cal.com did not answer within" in first
    assert "no answer, connection: connection to Cal.com failed: Cal.com closed" in second


async def test_a_lost_connection_reads_without_library_reprs(
    client: HttpCalcomClient, mocked: aioresponses
) -> None:
    # The message reaches the producer in a 502/503 body (detail.calcom_message).
    mocked.post(BOOKINGS, exception=aiohttp.ServerDisconnectedError(), repeat=True)

    with pytest.raises(CalcomUnavailable) as raised:
        await client.create_booking(REQUEST)

    message = raised.value.message
    assert message == "connection to Cal.com failed: Cal.com closed the connection before answering"
    assert not re.search(r"[A-Z]\w+(Error|Exception)|\(|'", message), message


async def test_a_taken_slot_is_logged_as_information_only(
    client: HttpCalcomClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(BOOKINGS, status=400, payload=envelope(400, "BadRequestException", TAKEN))
    caplog.set_level(logging.INFO, logger="service.calcom.client")

    with pytest.raises(CalcomSlotUnavailable):
        await client.create_booking(REQUEST)

    (line,) = calcom_lines(caplog)
    assert line.levelno == logging.INFO
    assert "HTTP 400" in line.getMessage()


async def test_an_unreadable_booking_is_logged(
    client: HttpCalcomClient, mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.post(BOOKINGS, status=201, payload={"status": "success", "data": None})
    caplog.set_level(logging.INFO, logger="service.calcom.client")

    with pytest.raises(CalcomUnavailable):
        await client.create_booking(REQUEST)

    (line,) = calcom_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "without a single booking" in line.getMessage()
