"""User-facing errors: the CLI prints these without a traceback and exits non-zero."""


class UserError(Exception):
    """A mistake in the user's input. Printed as one clear message; exit code ``exit_code``."""

    exit_code = 1


class ConfigError(UserError):
    """A flag, config key or combination of settings that cannot work."""

    exit_code = 2


class DataError(UserError):
    """Training data that cannot be read or turned into examples."""

    exit_code = 1
