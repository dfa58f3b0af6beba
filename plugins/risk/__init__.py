"""The risk filters.

The four basic ones, portfolio and flow limits, market hours, options guards, and halts.
"""
