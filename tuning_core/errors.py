"""User-facing errors: the CLI prints these without a traceback and exits non-zero.

``from_exception`` is the one place that turns known low-level exceptions (a non-UTF-8
file, input nested too deeply, a pickled weights file, a full disk) into one-line
messages, so no user mistake ends in a traceback.
"""

from __future__ import annotations

import errno

MAX_ECHO = 200  # characters of a user's value quoted back in an error message


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


def shorten(value, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` in at most about ``limit`` characters: a YAML alias bomb must not echo megabytes.

    reprlib cuts nested containers before formatting them, so the cost is bounded too.
    """
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 10, 10, 10, 10
    r.maxstring = r.maxother = r.maxlong = limit
    text = r.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def from_exception(e: BaseException) -> UserError | None:
    """A one-line UserError for a known kind of failure, or None (a bug: let the traceback show)."""
    if isinstance(e, UserError):
        return e
    name = type(e).__name__
    if isinstance(e, UnicodeDecodeError):
        return ConfigError(f"a file is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8")
    if isinstance(e, RecursionError):
        return ConfigError("the input is nested too deeply to read (JSON/YAML nesting); flatten it")
    if name == "UnpicklingError" or (isinstance(e, RuntimeError) and "weights_only" in str(e)):
        return ConfigError(
            "refusing to load a pickled weights file: it holds objects other than plain tensors "
            "(loaded with weights_only); convert the checkpoint to safetensors"
        )
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return ConfigError(f"no space left on the device{where}")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and e.filename:
        return ConfigError(f"{e.filename}: {e.strerror}")
    if name == "SafetensorError":
        return ConfigError(f"cannot read or write a safetensors file: {shorten(str(e))}")
    return None
