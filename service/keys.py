"""The typed keys under which the app factory keeps its dependencies (aiohttp `web.AppKey`)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from events.store import EventStore
from projections.projectors import Projectors
from service.clock import Clock
from service.settings import Settings
from service.workflow import BookingWorkflow

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", EventStore)
WORKFLOW = web.AppKey("workflow", BookingWorkflow)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
PROJECTORS = web.AppKey("projectors", Projectors)
