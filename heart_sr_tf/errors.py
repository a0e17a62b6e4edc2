"""Errors that reach the user as one line, never as a traceback."""


class HeartSRError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 2."""


class DataError(HeartSRError):
    """A file on disk is missing, unreadable or holds unusable data.

    The message always starts with the offending path.
    """

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(HeartSRError):
    """A configuration file or option is invalid."""
