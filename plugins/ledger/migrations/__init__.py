"""The ledger's schema history, as alembic migrations shipped in the package.

``tradepipe db upgrade`` applies them, and every ledger is brought up to date
when it is opened (:func:`tradepipe.plugins.ledger.db.upgrade`). A new schema
change is a new module in ``versions/`` whose ``down_revision`` is the current
head; the revision ids are short sequence numbers so the history reads in order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def earlier(name: str) -> Any:
    """The module of an earlier migration, by its file's name in ``versions/``: a
    migration makes its views again, or takes back to them, as that one made them.
    (The files' names start with digits: they cannot be imported by name.)"""
    path = Path(__file__).with_name("versions") / name
    spec = importlib.util.spec_from_file_location(f"tradepipe_ledger_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
