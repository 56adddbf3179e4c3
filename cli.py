"""Forwards to the package's command line (`ragecg.cli:app`)."""
from ragecg.cli import main

if __name__ == "__main__":
    main()
