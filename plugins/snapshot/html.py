"""``index.html``: the dashboard page, showing the snapshot files beside it.

It is the page ``tradepipe serve`` shows at ``/``, in its snapshot mode (see
:mod:`tradepipe.plugins.dashboard.page`): the script, the styles and the files'
contents are inside it, so opening it from disk works offline; served over
HTTP it fetches the JSON files again on load, so a page published once keeps
showing the latest files. Every value is inserted as text, never as HTML
(scanner names and broker messages come from outside).
"""

from __future__ import annotations

from typing import Any

from tradepipe.plugins.dashboard.page import page
from tradepipe.plugins.snapshot.files import FILES


def render(documents: dict[str, Any]) -> str:
    """The page for ``documents`` (file name → parsed JSON)."""
    return page("snapshot", {name: documents.get(name) for name in FILES})
