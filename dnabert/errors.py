"""User-facing errors: one line, naming the file and place, saying what to do."""

from __future__ import annotations

import errno
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hydra.errors import CompactHydraException, HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")

ERRNO_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere",
    errno.EACCES: "no permission: check the permissions or choose another path",
    errno.EPERM: "no permission: check the permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
    errno.EISDIR: "it is a directory: give a file path",
    errno.ENOENT: "check the path",
}


PLUGIN_PACKAGES = {"joblib": "'dnabert[sweep]'", "submitit_slurm": "'dnabert[sweep]'",
                   "submitit_local": "'dnabert[sweep]'", "optuna": "'dnabert[sweep]'", "ray": "hydra-ray-launcher",
                   "rq": "hydra-rq-launcher", "ax": "hydra-ax-sweeper", "nevergrad": "hydra-nevergrad-sweeper"}
"""What to install for a Hydra launcher or sweeper that is not there (`hydra/launcher=ray`)."""


class DnabertError(Exception):
    """A problem the user can fix; reported as a single `dnabert: ...` line, never a traceback."""


def warn(message: str) -> None:
    """One `dnabert: warning: ...` line on standard error: the run goes on, but the user should know."""
    print(f"dnabert: warning: {message}", file=sys.stderr)


def read_json(path: Path, what: str) -> Any:
    """Contents of a JSON file that dnabert wrote or reads; a damaged one is a user error naming its line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = f" line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise DnabertError(f"{path}{line}: not valid JSON ({getattr(error, 'msg', error)}); {what}") from None


def describe(error: BaseException) -> str:
    """One line for an exception a user caused (bad input, missing file, full disk)."""
    if isinstance(error, DnabertError):
        return str(error)
    if isinstance(error, MissingConfigException) and error.options:  # an unknown choice of a config group
        line = f"{str(error).splitlines()[0]}; choose from {', '.join(sorted(error.options))}"
        group, _, choice = (error.missing_cfg_file or "").rpartition("/")
        if group in ("hydra/launcher", "hydra/sweeper") and choice in PLUGIN_PACKAGES:
            line += f", or install it: pip install {PLUGIN_PACKAGES[choice]}"
        return line
    if isinstance(error, CompactHydraException):  # a config that cannot be composed: Hydra's reasons, on one line
        lines = [line.strip().rstrip(".") for line in str(error).splitlines() if line.strip()]
        return "; ".join(line for line in lines if not line.startswith(("full_key:", "object_type=")))
    if isinstance(error, OSError) and error.filename is not None:
        advice = ERRNO_ADVICE.get(error.errno)
        return f"{error.filename}: {error.strerror or error}" + (f"; {advice}" if advice else "")
    return f"{type(error).__name__}: {error}"


def user_error(error: BaseException) -> tuple[BaseException | None, str | None]:
    """The DnabertError or OSError an exception is, or that the config libraries wrapped (Hydra's instantiation,
    OmegaConf's resolvers), else a config Hydra could not compose or override, if any; and the config key being
    resolved when it was raised (OmegaConf names it `full_key`). Any other exception is a bug: its traceback shows,
    whatever it was raised from."""
    seen, key, config_error = set(), None, None
    while error is not None and id(error) not in seen:
        if isinstance(error, (DnabertError, OSError)):
            return error, key
        if not isinstance(error, (HydraException, OmegaConfBaseException)):
            break
        if isinstance(error, CompactHydraException) and config_error is None:
            config_error = error  # Hydra's own complaint, unless it wraps a DnabertError or OSError
        key = key or getattr(error, "full_key", None) or None
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return config_error, None


def report_errors(func: Callable[[], T], debug: bool = False) -> T:
    """Run `func`; on a user error print `dnabert: <message>` to stderr and exit with status 2."""
    try:
        return func()
    except BrokenPipeError:  # `dnabert predict ... --out - | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        sys.exit(0)
    except Exception as error:
        cause, key = user_error(error)
        if cause is None:
            raise
        if debug or os.environ.get("DNABERT_DEBUG"):
            traceback.print_exc()
        print(f"dnabert: {f'{key}: ' if key else ''}{describe(cause)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("dnabert: interrupted", file=sys.stderr)
        sys.exit(130)
