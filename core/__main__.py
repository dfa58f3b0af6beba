"""``python -m tradepipe`` runs the CLI."""

from tradepipe.cli import main

main()
