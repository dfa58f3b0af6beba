"""The SQL ledger.

Its sink, schema and migrations, reading it back, and the ``ledger``, ``db``, ``reconcile`` and
``explain`` commands.
"""
