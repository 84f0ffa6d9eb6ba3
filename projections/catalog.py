"""Every projection of the service, by name: what replay can rebuild and what runners keep."""

from __future__ import annotations

from projections import appointments_replay, rejections
from projections.projection import Projection


def all_projections() -> dict[str, Projection]:
    """Every projection, by name, in the order replay rebuilds them."""
    found = (appointments_replay.PROJECTION, rejections.PROJECTION)
    return {projection.name: projection for projection in found}


def asynchronous() -> list[Projection]:
    """The projections kept by a projector runner (the others are written inline)."""
    return [projection for projection in all_projections().values() if not projection.inline]
