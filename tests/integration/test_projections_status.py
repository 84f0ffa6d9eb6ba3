"""`booking-guard projections status` lists every projection, the inline one included."""

from __future__ import annotations

import io

import asyncpg

from projections import appointments, catalog
from service.cli.replay import projections_command
from service.settings import Settings
from tests.integration.test_appointments import confirmed


async def test_status_lists_every_projection_with_appointments_inline(
    db: asyncpg.Pool, database_url: str
) -> None:
    await appointments.apply(db, confirmed("call-687", "uid-1"))
    await appointments.apply(db, confirmed("call-701", "uid-2"))
    out = io.StringIO()

    code = await projections_command(Settings(database_url=database_url), "status", None, out=out)

    assert code == 0
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == list(catalog.all_projections())
    assert "appointments: inline (written with each booking), 2 rows" in lines
    (rejections,) = [line for line in lines if line.startswith("rejections: ")]
    assert "events behind" in rejections
