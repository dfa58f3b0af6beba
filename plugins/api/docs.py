"""The API's interactive docs (Swagger UI) served from files installed with tradepipe.

FastAPI's own docs page loads Swagger UI's script and styles from a CDN, so
it stays blank on a machine without internet. This page loads them from
``/docs/assets/``, the Swagger UI 5 build the ``fastapi-offline`` package
ships (Swagger UI 4, as in ``swagger-ui-bundle``, cannot read the OpenAPI
3.1 schema FastAPI writes). The validator badge, which would send the
schema's address to an outside service, is turned off.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"


def swagger_ui_files() -> Path:
    """The directory holding ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``favicon.png``."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def install_docs(app: FastAPI) -> None:
    """Serve the docs page at :data:`DOCS` and its files under :data:`ASSETS`.

    Build ``app`` with ``docs_url=None`` so FastAPI does not add its own page.
    """
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_files()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
