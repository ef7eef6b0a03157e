"""User-facing errors: the CLI prints these without a traceback and exits non-zero."""


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message for a one-line error, or its type if it has none."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(e).__name__


class UserError(Exception):
    """A mistake in the user's input. Printed as one clear message; exit code ``exit_code``."""

    exit_code = 1


class ConfigError(UserError):
    """A flag, config key or combination of settings that cannot work."""

    exit_code = 2


class DataError(UserError):
    """Training data that cannot be read or turned into examples."""

    exit_code = 1
