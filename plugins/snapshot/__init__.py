"""Snapshots.

The account and its market written as JSON files (and the dashboard page), once or on a schedule.
"""
