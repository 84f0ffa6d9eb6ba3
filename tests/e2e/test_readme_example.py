"""The README's booking example stays valid: its JSON is a BookingRequest and its curl lines,
sent as a shell would send them, book against the service and read the call's timeline."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
from yarl import URL

from service.booking.models import BookingRequest
from tests.conftest import ROOT
from tests.e2e.served import served_app, simulator_on_loopback

SECTION = "### `POST /v1/booking-attempts`"
MAKE_RUN_ORIGIN = "http://127.0.0.1:8080"


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    return readme[start : readme.index("\n### ", start + 1)]


def _block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", _section(), re.DOTALL)
    assert found, f"no {language} block under {SECTION}"
    return found.group(1)


@dataclass
class Curl:
    method: str
    url: URL
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None


def _shell_start() -> str:
    """What `date -u -d '+2 days' +%Y-%m-%dT09:00:00Z` prints."""
    return (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT09:00:00Z")


def _commands() -> tuple[dict[str, str], list[Curl]]:
    """The sh block's variables (their commands checked, their values computed) and curls."""
    # A command starts at the line's beginning; indented lines continue it (inside a quote too).
    commands: list[str] = []
    for line in _block("sh").splitlines():
        if line.startswith((" ", "\t")) and commands:
            commands[-1] += "\n" + line
        elif line.strip():
            commands.append(line)
    variables: dict[str, str] = {}
    curls = []
    for command in commands:
        line = command.replace("\\\n", " ")
        words = shlex.split(line, comments=True)
        assignment = re.fullmatch(r"([A-Z_]+)=\$\((.*)\)", line.split("#")[0].strip())
        if assignment:
            name, command = assignment.groups()
            assert command == "date -u -d '+2 days' +%Y-%m-%dT09:00:00Z", command
            variables[name] = _shell_start()
            continue
        assert words[0] == "curl", line
        curls.append(_curl(words[1:], variables))
    return variables, curls


def _curl(args: list[str], variables: dict[str, str]) -> Curl:
    curl = Curl(method="GET", url=URL())
    words = iter(args)
    for word in words:
        if word == "-s":
            continue
        if word == "-X":
            curl.method = next(words)
        elif word == "-H":
            name, _, value = next(words).partition(":")
            curl.headers[name.strip()] = value.strip()
        elif word == "-d":
            data = next(words)
            for name, value in variables.items():
                data = data.replace(f"${name}", value)
            curl.data = data
            if curl.method == "GET":
                curl.method = "POST"
        else:
            assert not word.startswith("-"), f"an option this test does not know: {word}"
            curl.url = URL(word)
    return curl


def test_the_json_example_is_a_booking_request_once_its_start_is_filled_in() -> None:
    body = json.loads(re.sub(r'"start": "<[^>]*>"', f'"start": "{_shell_start()}"', _block("json")))
    request = BookingRequest.model_validate(body)
    assert request.start > datetime.now(UTC)


def test_the_curl_lines_parse_and_match_the_json_example() -> None:
    variables, curls = _commands()
    assert set(variables) == {"START"}
    post, timeline = curls
    assert (post.method, str(post.url)) == ("POST", f"{MAKE_RUN_ORIGIN}/v1/booking-attempts")
    assert post.headers == {"Content-Type": "application/json"}
    assert post.data is not None
    sent = json.loads(post.data)
    example = json.loads(re.sub(r'"start": "<[^>]*>"', '"start": "x"', _block("json")))
    assert {**sent, "start": "x"} == example
    BookingRequest.model_validate(sent)
    assert timeline.method == "GET"
    assert timeline.url.path == f"/v1/calls/{sent['call_id']}/events"


async def test_the_curl_lines_book_and_show_the_timeline(
    db: asyncpg.Pool, database_url: str
) -> None:
    _, curls = _commands()
    async with AsyncExitStack() as stack:
        _, calcom_url = await stack.enter_async_context(simulator_on_loopback())
        client = await served_app(stack, database_url=database_url, calcom_base_url=calcom_url)
        post, timeline = curls
        response = await client.request(
            post.method, post.url.path, data=post.data, headers=post.headers
        )
        answer = await response.json()
        assert response.status == 201, answer
        assert answer["status"] == "confirmed"
        response = await client.request(timeline.method, timeline.url.path)
        assert response.status == 200
        types = [event["type"] for event in (await response.json())["events"]]
        assert "BookingConfirmed" in types, types


def test_the_shell_block_is_valid_bash_and_date_prints_what_the_test_sends() -> None:
    bash = shutil.which("bash")
    if bash is None:
        return
    checked = subprocess.run([bash, "-n"], input=_block("sh"), text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    # GNU date (Linux); the README gives the BSD spelling for macOS in a comment.
    printed = subprocess.run(
        ["date", "-u", "-d", "+2 days", "+%Y-%m-%dT09:00:00Z"], text=True, capture_output=True
    )
    if printed.returncode == 0:
        assert printed.stdout.strip() == _shell_start()
