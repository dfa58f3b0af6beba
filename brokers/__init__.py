"""Built-in broker adapters."""
