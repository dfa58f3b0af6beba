"""The paper simulator.

A broker that fills orders in process, with its account, checks, fills, options, expiry and state
file.
"""
