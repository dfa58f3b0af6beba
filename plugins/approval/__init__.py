"""Approvals: decisions that wait for a person, and the commands that answer them."""
