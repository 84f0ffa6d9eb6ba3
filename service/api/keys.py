"""The typed keys under which the app factory keeps its dependencies (aiohttp `web.AppKey`)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from events.store import EventStore
from projections.projectors import Projectors
from service.api.retell_agents import RetellAgents
from service.booking.alternatives import SlotFinder
from service.booking.background import BackgroundAttempts
from service.booking.calcom_changes import CalcomChanges
from service.booking.clock import Clock
from service.booking.reconciler import Reconciler
from service.booking.recovery import RecoveryLoop
from service.booking.workflow import BookingWorkflow
from service.ops.metrics import Metrics
from service.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
DSN = web.AppKey("dsn", str)
STORE = web.AppKey("store", EventStore)
WORKFLOW = web.AppKey("workflow", BookingWorkflow)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
PROJECTORS = web.AppKey("projectors", Projectors)
METRICS = web.AppKey("metrics", Metrics)
BACKGROUND_ATTEMPTS = web.AppKey("background_attempts", BackgroundAttempts)
RECOVERY = web.AppKey("recovery", RecoveryLoop)
RECONCILER = web.AppKey("reconciler", Reconciler)
CALCOM_CHANGES = web.AppKey("calcom_changes", CalcomChanges)
SLOT_FINDER = web.AppKey("slot_finder", SlotFinder)
RETELL_AGENTS = web.AppKey("retell_agents", RetellAgents)
