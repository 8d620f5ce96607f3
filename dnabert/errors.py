"""User-facing errors: one line, naming the file and place, saying what to do."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DnabertError(Exception):
    """A problem the user can fix; reported as a single `dnabert: ...` line, never a traceback."""


def describe(error: BaseException) -> str:
    """One line for an exception a user caused (bad input, missing file, full disk)."""
    if isinstance(error, DnabertError):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


def user_error(error: BaseException) -> BaseException | None:
    """The DnabertError or OSError behind an exception (libraries such as Hydra wrap them), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (DnabertError, OSError)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def report_errors(func: Callable[[], T], debug: bool = False) -> T:
    """Run `func`; on a user error print `dnabert: <message>` to stderr and exit with status 2."""
    try:
        return func()
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        if debug or os.environ.get("DNABERT_DEBUG"):
            traceback.print_exc()
        print(f"dnabert: {describe(cause)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("dnabert: interrupted", file=sys.stderr)
        sys.exit(130)
