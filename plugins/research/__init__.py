"""Research: a run's performance metrics and report, parameter sweeps and walk-forward tests."""
