"""`GET /docs`: Swagger UI over `/openapi.json`, from the files PyPI's swagger-ui-bundle-v2 ships.

Everything the page loads is served here, under `/docs/static/`: no CDN, so the page works on a
machine without Internet access and leaks nothing about who reads the contract. Its links are
relative (`docs/static/...`, `openapi.json`) so that it also works behind a proxy's path prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

PATH: Final = "/docs"
STATIC: Final = "/docs/static"
# importlib.resources hands a Traversable; an installed wheel's is a real folder aiohttp can serve.
ASSETS: Final = Path(str(swagger_ui_path))

# `validatorUrl: null`: by default Swagger UI sends the document to validator.swagger.io for its
# badge. The document is checked by openapi-spec-validator in the tests instead.
PAGE: Final = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>booking-guard API</title>
    <link rel="stylesheet" type="text/css" href="docs/static/swagger-ui.css">
    <link rel="icon" type="image/png" href="docs/static/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="docs/static/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.ui = SwaggerUIBundle({
        url: "openapi.json",
        dom_id: "#swagger-ui",
        presets: [SwaggerUIBundle.presets.apis],
        layout: "BaseLayout",
        validatorUrl: null,
        deepLinking: true,
      });
    </script>
  </body>
</html>
"""


async def docs_page(request: web.Request) -> web.Response:
    """GET /docs"""
    return web.Response(text=PAGE, content_type="text/html")


def add_docs_routes(app: web.Application) -> None:
    """The page and its assets; like /openapi.json, they need no token (service/api/auth.py)."""
    app.router.add_get(PATH, docs_page)
    app.router.add_static(STATIC, ASSETS, name="docs_static")
