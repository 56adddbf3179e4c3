"""Errors with exit codes. Messages name the file and the problem, never the file's content."""
from __future__ import annotations

# Exit codes (documented in README.md, one table).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INPUT = 3          # input unreadable or invalid
EXIT_UNUSABLE = 4       # signal unusable (quality gate)
EXIT_MODEL = 5          # model or index problem
EXIT_PARTIAL = 6        # evaluation / batch partly failed (some records skipped, listed)


class RagecgError(Exception):
    """Base class: a one-line, patient-data-free message and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UsageError(RagecgError):
    exit_code = EXIT_USAGE


class InputError(RagecgError):
    """The record cannot be read or is not a valid 12-lead ECG."""

    exit_code = EXIT_INPUT


class UnusableSignalError(RagecgError):
    """The record was read but its signal cannot support a diagnosis."""

    exit_code = EXIT_UNUSABLE


class ModelError(RagecgError):
    """A model, embedding model or index is missing, corrupt or failing."""

    exit_code = EXIT_MODEL


class LLMTimeoutError(ModelError):
    """The model did not answer within the time limit."""


class LLMCallError(ModelError):
    """The model or server failed to answer (HTTP error, refused connection, decode failure)."""


class IndexError_(ModelError):
    """The knowledge index is missing or corrupt (rebuild with `ragecg knowledge build`)."""
