"""User-facing errors: the CLI prints them as one line and exits with code 2."""

from __future__ import annotations


class ModalrecError(Exception):
    """An error the user can fix (bad file, bad config, bad argument)."""


class DataError(ModalrecError):
    """Malformed or inconsistent dataset files."""


class ConfigError(ModalrecError):
    """Unknown or invalid configuration keys or values."""


class TrainingError(ModalrecError):
    """A run that cannot go on (NaN loss, a model/objective mismatch)."""
