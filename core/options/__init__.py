"""Options: chains and their cache, option order fields, payoff and risk, multi-leg strategies."""
