"""Tax lots and realized gains from the ledger's fills, and ``tradepipe tax``."""
