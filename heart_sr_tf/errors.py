"""Errors that reach the user as one line, never as a traceback."""

import re


class HeartSRError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 2."""


class DataError(HeartSRError):
    """A file on disk is missing, unreadable or holds unusable data.

    The message always starts with the offending path.
    """

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")


class NoCine(DataError):
    """An image, but no cine to super-resolve: a localiser's several planes, or the phase (or real or imaginary)
    part of the signal. A cohort leaves such a scan out instead of failing it."""


class ConfigError(HeartSRError):
    """A configuration file or option is invalid."""


class UsageError(HeartSRError):
    """Options that do not go together; the CLI names the command they were given to."""


def os_reason(exc: OSError) -> str:
    """An operating-system error as the few words a user acts on ("No space left on device"), also where a library
    re-raised it with its own text and a traceback around it (pydicom names the element it was writing)."""
    if exc.strerror:
        return exc.strerror
    found = re.search(r"\[Errno \d+\] ([^\n]+)", str(exc))
    return found.group(1).strip() if found else (str(exc).splitlines() or [type(exc).__name__])[0]
