"""MkDocs hook: docstrings' Sphinx roles shown as code on the generated pages.

tradepipe's docstrings use Sphinx cross-reference roles (``:func:`replay```,
``:class:`Broker```); mkdocstrings renders the text around them but leaves the
role's name. This turns ``:func:<code>replay</code>`` into ``<code>replay</code>``
and a paragraph ending in ``::`` (a literal block follows) into one ending in
``:``.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj|const):(<code>[^<]*</code>)")
_BARE_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|exc|obj|const):`?([\w.~]+)`?")
_LITERAL = re.compile(r"::(</p>)")


def on_page_content(html: str, **_: Any) -> str:
    html = _ROLE.sub(r"\1", html)
    html = _BARE_ROLE.sub(r"<code>\1</code>", html)
    return _LITERAL.sub(r":\1", html)
