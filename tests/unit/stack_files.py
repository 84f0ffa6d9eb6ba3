"""Readers for the container and stack files, for tests that cannot build or start them.

No container engine, nginx or Grafana runs where the tests run, so these parse just enough of
each format to check what the files name: Dockerfile instructions, .dockerignore patterns, the
compose file and nginx's configuration blocks.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The console scripts of the environment running the tests (.venv/bin with `make test`).
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, its continuation lines joined."""

    keyword: str
    arguments: str
    stage: int

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD, ENTRYPOINT or HEALTHCHECK CMD."""
        start = self.arguments.index("[")
        value = json.loads(self.arguments[start:])
        assert isinstance(value, list), f"{self.keyword} {self.arguments}: not a JSON array"
        return [str(item) for item in value]


def dockerfile(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """The instructions in order; `stage` counts the FROMs (0 before the first)."""
    instructions: list[Instruction] = []
    stage, pending = 0, ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comment lines end nothing, even inside a continuation
        pending = f"{pending} {line}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        keyword = keyword.upper()
        stage += keyword == "FROM"
        instructions.append(Instruction(keyword, arguments.strip(), stage))
        pending = ""
    assert not pending, f"{path}: the last instruction ends in a continuation"
    return instructions


def dockerignore_excludes(relative: str, path: Path = ROOT / ".dockerignore") -> bool:
    """Whether .dockerignore keeps `relative` out of the build context.

    Docker's rules: patterns in order, the last match wins, `!` lets a path back in, and a
    pattern that matches a directory matches everything below it.
    """
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in path.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def compose(path: Path = ROOT / "compose.yaml") -> dict[str, Any]:
    """compose.yaml as YAML sees it (anchors and `<<` merged, nothing interpolated)."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, either form; None for a bare key (passed only when set)."""
    entries = service.get("environment") or {}
    if isinstance(entries, dict):
        return {str(k): None if v is None else str(v) for k, v in entries.items()}
    result: dict[str, str | None] = {}
    for entry in entries:
        name, equals, value = str(entry).partition("=")
        result[name] = value if equals else None
    return result


def image_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the image built from this repository's Dockerfile."""
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("build") in (".", {"context": "."})
    }


@dataclass
class Directive:
    """One nginx directive: `name args...;` or `name args... { children }`."""

    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        """Every directive called `name` at any depth below this one."""
        found = [child for child in self.children if child.name == name]
        for child in self.children:
            found.extend(child.find(name))
        return found


_NGINX_TOKEN = re.compile(r"""\s+|#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"'#]+""")


def nginx(path: Path) -> Directive:
    """nginx's configuration as a tree; an unbalanced brace or unended directive fails."""
    root = Directive("<main>", [])
    stack: list[Directive] = [root]
    words: list[str] = []
    for match in _NGINX_TOKEN.finditer(path.read_text()):
        token = match.group()
        if token.isspace() or token.startswith("#"):
            continue
        if token in (";", "{"):
            assert words, f"{path}: '{token}' without a directive"
            directive = Directive(words[0], [_unquote(word) for word in words[1:]])
            stack[-1].children.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            assert not words, f"{path}: {' '.join(words)!r} has no ';'"
            assert len(stack) > 1, f"{path}: '}}' closes nothing"
            stack.pop()
        else:
            words.append(token)
    assert not words, f"{path}: {' '.join(words)!r} has no ';'"
    assert len(stack) == 1, f"{path}: block {stack[-1].name!r} is never closed"
    return root


def _unquote(word: str) -> str:
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'" else word
