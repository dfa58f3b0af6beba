"""Feeds: where a run's market data comes from.

Live feeds (a :class:`~tradepipe.live.feed.LiveFeed` each) live here:
``synthetic_live``, a seeded real-time random walk that needs no account. The
replay feeds (``synthetic``, ``csv``) are still top-level modules of
:mod:`tradepipe.plugins`.
"""
