"""What every command module shares: the consoles, the log handler, the global options' state, and the
environment. No command module imports :mod:`modelshield.cli.app`, so the command modules form no cycle.

    >>> from modelshield.cli._console import state
    >>> state.verbose
    0

This is the one module of modelshield that reads the environment: ``MODELSHIELD_*`` variables, ``XDG_CACHE_HOME``
and the variables that hold passphrases (named on the command line, never given there); the library takes every
setting as an explicit argument.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from modelshield.cli.options import EXIT_USAGE
from modelshield.errors import InvalidParameterError, ModelShieldError
from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from rich.console import Console

    from modelshield.data import Dataset

    #: The console for progress and errors (standard error), made on first use so that commands which never
    #: write to it do not import rich.
    stderr: Console

__all__ = [
    "LOG_HANDLER",
    "cache_dir",
    "configure",
    "guarded",
    "load_dataset",
    "passphrase_from_env",
    "reference_cache_dir",
    "state",
    "stderr",
]


def __getattr__(name: str) -> Any:
    if name == "stderr":
        from rich.console import Console

        console = globals()["stderr"] = Console(stderr=True)
        return console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BUNDLED = "bundled:"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of each record (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


LOG_HANDLER = _StderrHandler()


class _State:
    """The global options of this run."""

    verbose: int = 0


state = _State()


def configure(verbose: int) -> None:
    """Apply the global ``-v`` count: the log level of the ``modelshield`` loggers, and tracebacks on errors."""
    state.verbose = verbose
    LOG_HANDLER.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    package = logging.getLogger("modelshield")
    package.setLevel(LOG_HANDLER.level)
    if LOG_HANDLER not in package.handlers:
        package.addHandler(LOG_HANDLER)


def guarded(command: Callable[[], int]) -> int:
    """Run ``command`` and return its exit code; a ModelShieldError or OSError becomes one line on standard error
    (with the traceback before it under ``-v``) and exit code 2."""
    try:
        return command()
    except ModelShieldError as exc:
        _report(exc, f"{_one_line(exc.message)} Fix: {_one_line(exc.cli_remedy)}")
    except OSError as exc:
        _report(exc, _one_line(str(exc)))
    return EXIT_USAGE


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report(exc: BaseException, message: str) -> None:
    if state.verbose:
        sys.stderr.write(printable("".join(traceback.format_exception(exc))))
    sys.stderr.write(f"error: {printable(message)}\n")


def cache_dir() -> Path | None:
    """Where reference targets are cached: ``$MODELSHIELD_CACHE_DIR``, else ``$XDG_CACHE_HOME/modelshield/zoo``,
    else None (the library's default, ``~/.cache/modelshield/zoo``)."""
    value = os.environ.get("MODELSHIELD_CACHE_DIR")
    if value:
        return Path(value)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "modelshield" / "zoo" if xdg else None


def reference_cache_dir() -> Path:
    """Where audits keep reusable work (reference models), beside the zoo's entries."""
    from modelshield.zoo import default_cache_dir

    return (cache_dir() or default_cache_dir()) / "_reference"


def load_dataset(spec: str, label: str) -> Dataset:
    """A dataset from ``bundled:NAME`` or a CSV, Parquet or NPZ file (``label`` names the label column)."""
    from modelshield.data import load_bundled, load_table

    if spec.startswith(BUNDLED):
        return load_bundled(spec.removeprefix(BUNDLED))
    return load_table(Path(spec), label=label)


def passphrase_from_env(variable: str | None) -> bytes | None:
    """The passphrase held in environment variable ``variable`` (never passed on the command line)."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise InvalidParameterError(
            f"Environment variable {variable} is not set or empty.", remedy=f"export {variable}=... first."
        )
    return value.encode("utf-8")
