"""docs/go-live.md names only commands, flags and settings that exist."""

from __future__ import annotations

import re

import pytest

from service.cli.main import main
from service.settings import ENV_NAMES
from tests.conftest import ROOT

DOC = ROOT / "docs" / "go-live.md"
SETTING = re.compile(
    r"\b(?:BOOKING_GUARD_[A-Z0-9_]+|CALCOM_[A-Z0-9_]+|RETELL_[A-Z0-9_]+|DATABASE_URL)\b"
)
WORD = re.compile(r"[a-z][a-z-]*")
FLAG = re.compile(r"--[a-z][a-z-]*")


def code() -> list[str]:
    """The doc's code: inline spans and the lines of fenced blocks."""
    text = DOC.read_text()
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    return re.findall(r"`([^`\n]+)`", prose) + [line for b in blocks for line in b.splitlines()]


def commands() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each `booking-guard ...` written in the doc: its command words and its flags."""
    found = set()
    for snippet in code():
        for rest in re.findall(r"booking-guard((?:\s+\S+)*)", snippet):
            tokens = rest.split()
            words: list[str] = []
            for token in tokens:
                if not WORD.fullmatch(token):
                    break
                words.append(token)
            flags = tuple(t for t in tokens if FLAG.fullmatch(t))
            found.add((tuple(words), flags))
    return sorted(found)


def help_of(words: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`booking-guard <words> --help`: its exit status and text."""
    with pytest.raises(SystemExit) as stopped:
        main([*words, "--help"])
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out + captured.err


def test_the_doc_names_the_commands_it_teaches() -> None:
    names = {words for words, _ in commands()}
    assert ("check",) in names and ("retell", "functions") in names
    assert any(
        flags == ("--agent",) for words, flags in commands() if words == ("retell", "functions")
    )


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c[0] + c[1]))
def test_every_command_and_flag_in_the_doc_exists(
    command: tuple[tuple[str, ...], tuple[str, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    words, flags = command
    assert words, "`booking-guard` without a command"
    status, text = help_of([words[0]], capsys)
    assert status == 0, f"no command {words[0]!r}: {text}"
    for depth in range(1, len(words)):
        # A sub-command or a choice of the positional argument: either way, its parent lists it.
        assert re.search(rf"\b{re.escape(words[depth])}\b", text), (words, text)
        status, deeper = help_of(list(words[: depth + 1]), capsys)
        if status == 0 and "usage:" in deeper:
            text = deeper
    for flag in flags:
        # Whole flags only: `--event-typ` is not `--event-type`.
        assert re.search(rf"{re.escape(flag)}(?![a-z-])", text), (words, flag, text)


def test_every_setting_in_the_doc_exists() -> None:
    named = set(SETTING.findall(DOC.read_text()))
    assert named, "the doc names no settings"
    assert named <= set(ENV_NAMES.values()), sorted(named - set(ENV_NAMES.values()))


def test_the_readme_links_the_guide() -> None:
    assert "(docs/go-live.md)" in (ROOT / "README.md").read_text()
