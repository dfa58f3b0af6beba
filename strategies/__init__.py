"""Built-in decision sources."""
