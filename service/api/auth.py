"""Producer authentication: bearer tokens from BOOKING_GUARD_API_TOKENS on the /v1 API.

Webhooks are exempt (they prove themselves by signature); /health, /ready, /metrics,
/openapi.json and /docs (with /docs/static/) stay open for probes, scrapers and people reading the
contract: only paths under /v1 are protected.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from service.api.errors import error_response

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/v1/"
EXEMPT_PREFIX = "/v1/webhooks/"
CHALLENGE = 'Bearer realm="booking-guard"'


def _digest(token: str) -> bytes:
    # Comparing digests keeps the comparison's time independent of the tokens' lengths too.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def needs_token(request: web.Request) -> bool:
    """Whether the route this request reached (or its path, if none) is behind the tokens."""
    resource = request.match_info.route.resource
    # The matched route, not the raw path: a path aiohttp normalised differently cannot sneak
    # a protected handler past the check.
    path = resource.canonical if resource is not None else request.path
    if path == "/v1" or path.startswith(PROTECTED_PREFIX):
        return not path.startswith(EXEMPT_PREFIX)
    return False


class BearerTokens:
    """Checks `Authorization: Bearer <token>` against every configured token in constant time."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens:
            raise ValueError("BearerTokens needs at least one token")
        self._digests = [_digest(token) for token in tokens]

    def accepts(self, header: str | None) -> bool:
        """Whether the header carries one of the tokens; every token is compared, always."""
        scheme, _, given = (header or "").partition(" ")
        digest = _digest(given.strip())
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched and scheme.lower() == "bearer"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answer 401 to a protected request without a valid token."""
        if needs_token(request) and not self.accepts(request.headers.get("Authorization")):
            detail = (
                "send Authorization: Bearer <token>"
                if "Authorization" not in request.headers
                else "the bearer token is not valid"
            )
            return error_response(
                401, "unauthorized", detail, headers={"WWW-Authenticate": CHALLENGE}
            )
        return await handler(request)


def auth_middlewares(tokens: Sequence[str]) -> list[Middleware]:
    """The auth middleware for these tokens; none, with a warning, when no token is set."""
    if not tokens:
        log.warning("BOOKING_GUARD_API_TOKENS is not set: the /v1 API accepts requests from anyone")
        return []
    return [BearerTokens(tokens).middleware]
