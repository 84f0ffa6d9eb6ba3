"""Every setting is in the README's settings table: the names are part of the contract."""

from __future__ import annotations

import re

import pytest

from service.settings import ENV_NAMES
from tests.conftest import ROOT


def settings_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Settings")
    return readme[start : readme.index("\n## ", start + 1)]


@pytest.mark.parametrize("name", sorted(ENV_NAMES.values()))
def test_every_setting_has_a_row_in_the_readme(name: str) -> None:
    rows = [line for line in settings_table().splitlines() if line.startswith("|")]
    assert any(re.search(rf"`{re.escape(name)}`", row) for row in rows), name


def test_the_limits_name_the_timeouts_and_the_strictness_rules() -> None:
    readme = (ROOT / "README.md").read_text()
    limits = readme[readme.index("### Limits") : readme.index("### OpenAPI")]
    for words in (
        "BOOKING_GUARD_HEADER_TIMEOUT_SECONDS",
        "BOOKING_GUARD_BODY_TIMEOUT_SECONDS",
        "BOOKING_GUARD_MAX_CONNECTIONS",
        "not coerced",
        "ASCII digits",
    ):
        assert words in limits, words
