"""The dashboard page and its assets, served by the API and written beside snapshot files."""
