"""``python -m tradepipe`` runs the CLI."""

from tradepipe.cli import main

if __name__ == "__main__":  # not when a tool imports every module (docs, coverage)
    main()
