"""The live run.

The loop on the wall clock, its feed, its trading-hours gate, its set-up and its status file.
"""
