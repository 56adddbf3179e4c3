"""Forwards to the package's command line (`ragecg.cli:app`)."""
from ragecg.cli import entry

if __name__ == "__main__":
    entry()
