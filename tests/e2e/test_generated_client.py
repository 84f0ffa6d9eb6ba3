"""A Python client generated from the /openapi.json the running service serves books through it:
the document is usable as a contract, not only valid (openapi-python-client, default settings)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import MakeHarness, attempt_body

TOKEN = "generated-client-token-0123"
PACKAGE = "booking_guard_generated_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")
# Only what the test needs changed from the defaults: no ruff hooks (the generated code is not
# ours to lint, and ruff may not be on PATH).
CONFIG = "post_hooks: []\n"

pytestmark = pytest.mark.slow


@pytest.fixture
def importable(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path` on sys.path for the test; the generated modules are forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]


async def _generate(document: dict[str, Any], into: Path) -> None:
    (into / "openapi.json").write_text(json.dumps(document))
    (into / "config.yaml").write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(GENERATOR),
        "generate",
        "--path",
        str(into / "openapi.json"),
        "--output-path",
        str(into / PACKAGE),
        "--meta",
        "none",
        "--config",
        str(into / "config.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    assert b"Warning" not in output, output.decode()


async def test_a_client_generated_from_the_served_document_books_a_slot(
    make_harness: MakeHarness, importable: Path
) -> None:
    harness = await make_harness(api_tokens=[TOKEN])
    served = await harness.client.get("/openapi.json")
    assert served.status == 200
    await _generate(await served.json(), importable)

    client_module = importlib.import_module(f"{PACKAGE}.client")
    create = importlib.import_module(f"{PACKAGE}.api.bookings.create_booking_attempt")
    models = importlib.import_module(f"{PACKAGE}.models")
    base_url = str(harness.client.make_url("")).rstrip("/")
    body = models.BookingRequest.from_dict(attempt_body("call_generated_client"))

    async with client_module.AuthenticatedClient(base_url=base_url, token=TOKEN) as client:
        response = await create.asyncio_detailed(client=client, body=body, idempotency_key="g-1")
        assert response.status_code == 201, response.content
        outcome = response.parsed
        assert isinstance(outcome, models.AttemptOutcome)
        assert str(outcome.status) == "confirmed"
        assert outcome.appointment.call_id == "call_generated_client"

        again = await create.asyncio_detailed(client=client, body=body, idempotency_key="g-1")
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.parsed.appointment.appointment_id == outcome.appointment.appointment_id
    assert await harness.appointment_count() == 1
