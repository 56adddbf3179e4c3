"""`python -m ragecg.cli`: the command line, which lives in `ragecg.app.cli`."""
from ragecg.app.cli import app, entry, main

__all__ = ["app", "entry", "main"]

if __name__ == "__main__":
    entry()
