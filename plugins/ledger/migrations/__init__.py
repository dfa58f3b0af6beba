"""The ledger's schema history, as alembic migrations shipped in the package.

``tradepipe db upgrade`` applies them, and every ledger is brought up to date
when it is opened (:func:`tradepipe.plugins.ledger.db.upgrade`). A new schema
change is a new module in ``versions/`` whose ``down_revision`` is the current
head; the revision ids are short sequence numbers so the history reads in order.
"""
