"""Layer 3's port over the appointments table: is this Cal.com booking already someone's?"""

from __future__ import annotations

import asyncpg

from projections import appointments
from service.booking.guards import ExistingAppointment


class PoolAppointmentLookup:
    """The existing-appointment guard's `AppointmentLookup`, reading the appointments table."""

    # The appointments table's unique index on booking_uid refuses what this lookup would find
    # (service/booking/guards.py: layer 3 may be deferred to the confirmation's statement).
    behind_unique_index = True

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def by_booking_uid(self, booking_uid: str) -> ExistingAppointment | None:
        row = await appointments.by_booking_uid(self._pool, booking_uid)
        if row is None:
            return None
        return ExistingAppointment(
            appointment_id=row["appointment_id"],
            call_id=row["call_id"],
            attempt_id=row["attempt_id"],
            booking_uid=row["booking_uid"],
        )
