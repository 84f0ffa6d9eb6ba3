"""The Cal.com simulator: Cal.com's bookings API v2 as an aiohttp app on loopback.

`server.CalcomSimulator` is the app; `state` holds its bookings and Cal.com's booking rules,
`routes` and `admin` its HTTP faces, `faults` the scripted failures; `webhooks` sends Cal.com's
webhooks (bodies from `webhook_payloads`), `admin_lifecycle` plays the host and the attendee.
"""
