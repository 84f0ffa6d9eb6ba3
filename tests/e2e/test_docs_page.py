"""`GET /docs`: an interactive page for /openapi.json, from local assets only, without a token."""

from __future__ import annotations

import re

from tests.e2e.conftest import MakeHarness

TOKEN = "docs-page-token-0123456789"
_LINKS = re.compile(r'(?:src|href)="([^"]+)"')


async def test_the_docs_page_and_every_asset_it_loads_are_served_here_without_a_token(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(api_tokens=[TOKEN])
    client = harness.client

    page = await client.get("/docs")
    assert page.status == 200
    assert page.content_type == "text/html"
    html = await page.text()
    links = _LINKS.findall(html)
    assert links, html
    # Nothing from the network: every link is relative to the service, and so is the document.
    assert [link for link in links if not link.startswith("docs/static/")] == []
    assert "://" not in html
    assert 'url: "openapi.json"' in html
    assert "validatorUrl: null" in html  # else Swagger UI posts the document to swagger.io
    for link in links:
        asset = await client.get(f"/{link}")
        assert asset.status == 200, link
        assert len(await asset.read()) > 100, link
    script = await client.get("/docs/static/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in await script.text()

    assert (await client.get("/openapi.json")).status == 200
    assert (await client.get("/v1/appointments")).status == 401  # the tokens are on
    assert (await client.get("/docs/static/no-such-file.js")).status == 404
    assert (await client.get("/docs/static/../../pyproject.toml")).status in (403, 404)
