"""The HTTP edge: aiohttp routes, middlewares, webhooks, auth and OpenAPI.

The only room that knows HTTP: it parses requests into the booking room's models, calls it, and
turns the outcomes it returns into statuses (`service/api/outcomes.py`).
"""
