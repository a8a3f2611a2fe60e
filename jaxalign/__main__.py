"""`python -m jaxalign` runs the command-line interface."""

from jaxalign.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
