"""Alembic's entry point: migrations run on the connection tradepipe hands over.

tradepipe never runs alembic from an ``alembic.ini``; it builds the
configuration in code and passes an open connection in
``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from tradepipe.plugins.ledger.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot alter most column properties in place: batch mode rebuilds.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
