"""`CalcomClient` over Cal.com's HTTP API v2 (cal-api-version 2024-08-13), with bounded retries."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import ValidationError

from events.jsonb import plainly_storable, unstorable
from service.calcom.account import CalcomAccount
from service.calcom.errors import calcom_error, retry_after_seconds
from service.calcom.event_types import EVENT_TYPES_API_VERSION, CalcomEventType
from service.calcom.port import (
    UNSUPPORTED_EVENT_TYPE,
    CalcomAuthFailed,
    CalcomBooking,
    CalcomError,
    CalcomInvalidResponse,
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
    CreateBooking,
    to_calcom_time,
)
from service.calcom.rate_limit import (
    Announcement,
    CalcomBudget,
    CalcomRateLimited,
    reset_seconds,
)
from service.calcom.slots import SLOTS_API_VERSION, slot_starts

log = logging.getLogger(__name__)

API_VERSION = "2024-08-13"
DEFAULT_BASE_URL = "https://api.cal.com"
# GetBookingsInput_2024_08_13 caps `take` at 250.
LIST_PAGE_MAX = 250


class RequestObserver(Protocol):
    """Told about every HTTP attempt; `route` is the path template, `status` None on no answer."""

    def __call__(
        self, method: str, route: str, status: int | None, seconds: float, attempt: int, /
    ) -> None: ...


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: Any
    # The text alone shows that every value in the body can be kept in the ledger's jsonb
    # (events.jsonb.plainly_storable): its bookings need no walk of their own (`_parse_booking`).
    storable: bool = False


@dataclass(frozen=True, slots=True)
class _Failure:
    error: CalcomError
    retryable: bool
    maybe_written: bool


class HttpCalcomClient:
    """The Cal.com operations booking-guard uses, over HTTP, retrying what may be retried."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        connect_timeout: float = 3.0,
        total_timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_base: float = 0.25,
        backoff_max: float = 4.0,
        max_retry_after: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        on_request: RequestObserver | None = None,
        budget: CalcomBudget | None = None,
    ) -> None:
        origin = base_url.rstrip("/")
        if origin.endswith("/v2"):
            raise ValueError(f"base_url is Cal.com's origin without /v2, got {base_url!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if connect_timeout <= 0 or total_timeout <= 0:
            raise ValueError(
                f"timeouts must be positive, got connect={connect_timeout} total={total_timeout}"
            )
        self._api = f"{origin}/v2"
        # Enough to tell an operator which key Cal.com refused, never enough to use it.
        self.key_prefix = f"{api_key[:8]}…"
        self._session = session
        self._owns_session = session is None
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            # Without it Cal.com silently answers from an older controller with another shape.
            "cal-api-version": API_VERSION,
            "Accept": "application/json",
        }
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._jitter = jitter
        self._on_request = on_request
        # None: no rate limit of our own (the simulator in tests, a self-hosted Cal.com).
        self._budget = budget
        self.requests_total = 0
        self.retries_total = 0
        self.seconds_total = 0.0

    async def __aenter__(self) -> HttpCalcomClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def create_booking(self, request: CreateBooking) -> CalcomBooking:
        """`POST /v2/bookings`: a new booking, or the one Cal.com chose to return instead."""
        answer = await self._call("POST", "/bookings", "/v2/bookings", json=request.to_calcom())
        return _booking(answer)

    async def find_bookings(
        self, *, attendee_email: str, event_type_id: int, start: datetime
    ) -> list[CalcomBooking]:
        """Bookings of this attendee and event type starting exactly at `start`, any status."""
        params = {
            "attendeeEmail": attendee_email,
            "eventTypeId": str(event_type_id),
            "afterStart": to_calcom_time(start),
            # Cal.com filters on the end (endTime <= beforeEnd) and we do not know the length;
            # a day bounds the page, and the exact start is checked below.
            "beforeEnd": to_calcom_time(start + timedelta(days=1)),
            "sortStart": "asc",
            "take": "100",
        }
        bookings = _bookings(await self._call("GET", "/bookings", "/v2/bookings", params=params))
        wanted = to_calcom_time(start)  # Cal.com keeps milliseconds
        return [b for b in bookings if b.start is not None and to_calcom_time(b.start) == wanted]

    async def list_bookings(
        self, *, created_after: datetime, created_before: datetime | None = None, take: int = 100
    ) -> list[CalcomBooking]:
        """Every booking created in the window, any status, oldest first: all pages of
        `GET /v2/bookings` (for reconciliation against the ledger)."""
        if not 1 <= take <= LIST_PAGE_MAX:
            raise ValueError(f"take must be between 1 and {LIST_PAGE_MAX}, got {take}")
        params = {
            # Without a status Cal.com's default may leave some out; these three cover every
            # booking but recurring series (which booking-guard never makes).
            "status": "upcoming,past,cancelled",
            "afterCreatedAt": to_calcom_time(created_after),
            # Oldest first, so bookings created while we page land on later pages, not shift
            # the ones we have yet to read.
            "sortCreated": "asc",
            "take": str(take),
        }
        if created_before is not None:
            params["beforeCreatedAt"] = to_calcom_time(created_before)
        found: dict[str, CalcomBooking] = {}
        skip = 0
        while True:
            answer = await self._call(
                "GET", "/bookings", "/v2/bookings", params=params | {"skip": str(skip)}
            )
            page = _bookings(answer)
            body = answer.body
            for booking in page:
                found.setdefault(booking.uid, booking)
            pagination = body.get("pagination") if isinstance(body, dict) else None
            more = pagination.get("hasNextPage") if isinstance(pagination, dict) else None
            if not page or more is False or (more is None and len(page) < take):
                return list(found.values())
            skip += len(page)

    async def get_me(self) -> CalcomAccount:
        """`GET /v2/me`: the user this API key belongs to."""
        body = (await self._call("GET", "/me", "/v2/me")).body
        data = body.get("data") if isinstance(body, dict) else None
        try:
            return CalcomAccount.from_calcom(data if isinstance(data, dict) else {})
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            raise CalcomInvalidResponse(
                f"Cal.com answered GET /v2/me without a user we can read: {_fields_at_fault(e)}",
                code="invalid_response",
            ) from e

    async def get_event_type(self, event_type_id: int) -> CalcomEventType:
        """`GET /v2/event-types/{id}` (cal-api-version 2024-06-14): what kind of type it is."""
        answer = await self._call(
            "GET",
            f"/event-types/{int(event_type_id)}",
            "/v2/event-types/{id}",
            version=EVENT_TYPES_API_VERSION,
        )
        body = answer.body
        data = body.get("data") if isinstance(body, dict) else None
        try:
            return CalcomEventType.from_calcom(data if isinstance(data, dict) else {})
        except (KeyError, TypeError, ValueError) as e:
            # The message reaches the producer (a 502 body): Cal.com's fault in words, the
            # exception itself only in the log.
            log.warning("Cal.com's event type %s cannot be read: %s", event_type_id, e)
            raise CalcomUnavailable(
                f"Cal.com answered GET /v2/event-types/{event_type_id} with no event type we "
                "can read",
                code="invalid_response",
            ) from e

    async def find_slots(
        self, *, event_type_id: int, start: datetime, end: datetime, time_zone: str
    ) -> list[datetime]:
        """`GET /v2/slots` (cal-api-version 2024-09-04): free starts in [start, end], in UTC."""
        params = {
            "eventTypeId": str(event_type_id),
            "start": to_calcom_time(start),
            "end": to_calcom_time(end),
            "timeZone": time_zone,
        }
        answer = await self._call(
            "GET", "/slots", "/v2/slots", params=params, version=SLOTS_API_VERSION
        )
        starts = slot_starts(answer.body)
        if starts is None:
            log.warning("Cal.com answered GET /v2/slots without slots by date")
            raise CalcomUnavailable(
                "Cal.com answered GET /v2/slots without slots by date", code="invalid_response"
            )
        return starts

    async def get_booking(self, uid: str) -> CalcomBooking:
        """`GET /v2/bookings/{uid}`."""
        return _booking(await self._call("GET", f"/bookings/{_segment(uid)}", "/v2/bookings/{uid}"))

    async def cancel_booking(self, uid: str, *, reason: str | None = None) -> CalcomBooking:
        """`POST /v2/bookings/{uid}/cancel`; Cal.com frees the slot."""
        payload = {} if reason is None else {"cancellationReason": reason}
        answer = await self._call(
            "POST", f"/bookings/{_segment(uid)}/cancel", "/v2/bookings/{uid}/cancel", json=payload
        )
        return _booking(answer)

    async def reschedule_booking(
        self, uid: str, *, start: datetime, reason: str | None = None
    ) -> CalcomBooking:
        """`POST /v2/bookings/{uid}/reschedule`: a new booking with a new uid."""
        payload: dict[str, Any] = {"start": to_calcom_time(start)}
        if reason is not None:
            payload["reschedulingReason"] = reason
        path = f"/bookings/{_segment(uid)}/reschedule"
        return _booking(
            await self._call("POST", path, "/v2/bookings/{uid}/reschedule", json=payload)
        )

    async def _call(
        self,
        method: str,
        path: str,
        route: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        version: str = API_VERSION,
    ) -> _Answer:
        """One logical call: up to `max_attempts` requests; the 2xx answer, its body parsed."""
        uncertain = False
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self.retries_total += 1
            result = await self._attempt(
                method, path, route, attempt, json=json, params=params, version=version
            )
            if not isinstance(result, _Failure):
                return result
            error = result.error
            error.attempts = attempt
            error.earlier_attempt_uncertain = uncertain
            uncertain = uncertain or result.maybe_written
            if not result.retryable or attempt == self._max_attempts:
                self._log_failure(method, route, attempt, error, retrying=False)
                raise error
            delay = self._backoff(attempt) if error.retry_after is None else error.retry_after
            if delay > self._max_retry_after:
                # Cal.com asks for longer than a caller on the phone can wait: give the decision
                # back instead of sleeping through the producer's timeout.
                self._log_failure(method, route, attempt, error, retrying=False)
                raise error
            self._log_failure(method, route, attempt, error, retrying=True)
            await self._sleep(delay)
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        path: str,
        route: str,
        attempt: int,
        *,
        json: dict[str, Any] | None,
        params: dict[str, str] | None,
        version: str,
    ) -> _Answer | _Failure:
        """One request: a 2xx answer with its body parsed, else a `_Failure`."""
        if self._budget is not None:
            try:
                await self._budget.take()
            except CalcomRateLimited as e:
                # Not sent: a request into a spent budget is refused and prolongs nothing.
                return _Failure(e, retryable=False, maybe_written=False)
        started = time.monotonic()
        status: int | None = None
        try:
            answer = await self._send(method, path, json=json, params=params, version=version)
            status = answer.status
        except TimeoutError as e:
            seconds = self._timeout.total
            error = CalcomUnavailable(f"Cal.com did not answer within {seconds} s", code="timeout")
            error.__cause__ = e
            # aiohttp's connect timeout means nothing was sent; any other timeout is unknown.
            sent = not isinstance(e, aiohttp.ConnectionTimeoutError)
            return _Failure(error, retryable=True, maybe_written=sent)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            error = CalcomUnavailable(
                f"connection to Cal.com failed: {_connection_words(e)}", code="connection"
            )
            error.__cause__ = e
            sent = not isinstance(e, aiohttp.ClientConnectorError)
            return _Failure(error, retryable=True, maybe_written=sent)
        finally:
            self._observe(method, route, status, time.monotonic() - started, attempt)
        if self._budget is not None:
            await self._budget.observe(Announcement.from_headers(answer.status, answer.headers))
        if 200 <= answer.status < 300:
            if answer.body is None:
                # Not retried: a create may have succeeded behind the unreadable answer.
                error = CalcomInvalidResponse(
                    f"Cal.com answered {answer.status} with a body that is not JSON",
                    status=answer.status,
                    code="invalid_response",
                )
                return _Failure(error, retryable=False, maybe_written=True)
            return answer
        wait = retry_after_seconds(answer.headers)
        if answer.status == 429 and wait is None:
            # Cal.com sends no Retry-After; its reset header says when the block ends.
            wait = reset_seconds(answer.headers)
        refusal = calcom_error(answer.status, answer.body, retry_after=wait)
        if isinstance(refusal, CalcomAuthFailed):
            log.error(
                "Cal.com refused the API key %s (HTTP %s: %s): fix CALCOM_API_KEY; "
                "bookings fail with calcom_auth_failed until then",
                self.key_prefix,
                answer.status,
                refusal.message,
                extra={"calcom_key_prefix": self.key_prefix, "calcom_status": answer.status},
            )
            return _Failure(refusal, retryable=False, maybe_written=False)
        transient = answer.status == 429 or answer.status >= 500
        return _Failure(refusal, retryable=transient, maybe_written=answer.status >= 500)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None,
        params: dict[str, str] | None,
        version: str,
    ) -> _Answer:
        session = self._ensure_session()
        # Each controller has its own version (bookings 2024-08-13, event types 2024-06-14).
        headers = (
            self._headers
            if version == API_VERSION
            else {**self._headers, "cal-api-version": version}
        )
        async with session.request(
            method,
            f"{self._api}{path}",
            json=json,
            params=params,
            headers=headers,
            timeout=self._timeout,
            # A redirected POST becomes a GET in aiohttp; a redirect here is a misconfiguration.
            allow_redirects=False,
        ) as response:
            raw = await response.read()
            body = _json_or_none(raw)
            storable = body is not None and plainly_storable(raw, max_depth=MAX_ANSWER_DEPTH)
            return _Answer(response.status, response.headers, body, storable)

    def _log_failure(
        self, method: str, route: str, attempt: int, error: CalcomError, *, retrying: bool
    ) -> None:
        """One line per request Cal.com failed: status and reason, never the key or a body."""
        if isinstance(error, CalcomAuthFailed):
            return  # _attempt has logged it as an ERROR naming the key's prefix
        status = "no answer" if error.status is None else f"HTTP {error.status}"
        then = "retrying" if retrying else "giving up"
        # A taken slot is Cal.com working as it should: an outcome, not an operator's concern.
        level = logging.INFO if isinstance(error, CalcomSlotUnavailable) else logging.WARNING
        log.log(
            level,
            "Cal.com %s %s failed (attempt %d of %d): %s, %s: %s; %s",
            method,
            route,
            attempt,
            self._max_attempts,
            status,
            error.code or "no code",
            error.message,
            then,
            extra={
                "calcom_method": method,
                "calcom_route": route,
                "calcom_status": error.status,
                "calcom_code": error.code,
                "calcom_attempt": attempt,
            },
        )

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created on first use so that it belongs to the running event loop.
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _backoff(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1)))."""
        ceiling = min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
        return self._jitter() * ceiling

    def _observe(
        self, method: str, route: str, status: int | None, seconds: float, attempt: int
    ) -> None:
        self.requests_total += 1
        self.seconds_total += seconds
        if self._on_request is not None:
            self._on_request(method, route, status, seconds, attempt)


def _connection_words(error: aiohttp.ClientError) -> str:
    """What went wrong with the connection, in words: its repr would name aiohttp's classes."""
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "Cal.com closed the connection before answering"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {error.host}:{error.port}"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the answer's body broke off"
    return "the connection broke"


def _unreadable(message: str) -> CalcomInvalidResponse:
    """A 2xx answer we cannot use, logged: the attempt fails on it like on a 5xx."""
    log.warning("%s", message)
    return CalcomInvalidResponse(message, code="invalid_response")


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _segment(uid: str) -> str:
    if not uid:
        raise ValueError("a booking uid is required, got an empty string")
    return quote(uid, safe="")


def _booking(answer: _Answer) -> CalcomBooking:
    body = answer.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        # A recurring event type answers a create with one booking per occurrence. Cal.com has
        # written them all: a retry would book the series again, so this is a refusal that is
        # never retried, not an unreadable answer (shared/contracts/README.md, "Event types").
        message = (
            f"Cal.com answered with {len(data)} bookings (a recurring event type); "
            "booking-guard books single events only"
        )
        log.warning("%s", message)
        raise CalcomRejected(message, code=UNSUPPORTED_EVENT_TYPE)
    if not isinstance(data, dict):
        # A recurring booking answers with a list; booking-guard books single events only.
        raise _unreadable("Cal.com answered without a single booking in `data`")
    return _parse_booking(data, storable=answer.storable)


def _bookings(answer: _Answer) -> list[CalcomBooking]:
    body = answer.body
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise _unreadable("Cal.com answered GET /v2/bookings without a list")
    return [
        _parse_booking(item, storable=answer.storable) for item in data if isinstance(item, dict)
    ]


# The answer is kept whole in the ledger (jsonb): it cannot hold NUL, and nothing Cal.com sends
# about one booking nests this deep.
MAX_ANSWER_DEPTH = 32


def _parse_booking(data: dict[str, Any], *, storable: bool) -> CalcomBooking:
    """`data` as a booking, or CalcomInvalidResponse; `storable`: the answer's text already
    showed that nothing in it is too deep or holds a NUL, so it is not walked again."""
    problem = None if storable else unstorable(data, max_depth=MAX_ANSWER_DEPTH)
    if problem is not None:
        raise _unreadable(f"Cal.com answered with a booking we cannot keep: {problem}")
    try:
        return CalcomBooking.from_calcom(data)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise _unreadable(
            f"Cal.com answered with a booking we cannot read: {_fields_at_fault(e)}"
        ) from e


def _fields_at_fault(error: ValueError) -> str:
    """pydantic's errors without the input values (a 10 KB uid is no message)."""
    if not isinstance(error, ValidationError):
        return str(error)[:300]
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'booking'}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    )[:500]
