"""The root Typer app, global options and error handling; each command group lives in its own module.

    >>> from modelshield.cli.app import main
    >>> main(["targets", "--help"])  # doctest: +SKIP

Command modules import their shared state from :mod:`modelshield.cli._console`, never from here.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Annotated

import typer

from modelshield._version import __version__
from modelshield.cli._console import LOG_HANDLER, state, stderr
from modelshield.cli._threads import DEFAULT_THREADS, configure_torch_threads
from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE
from modelshield.errors import ModelShieldError
from modelshield.reporting.interface import printable

__all__ = ["EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_USAGE", "app", "main"]


app = typer.Typer(
    name="modelshield",
    help="Security for machine-learning models: scan, audit, harden.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelshield {__version__}")
        raise typer.Exit(EXIT_CLEAN)


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output; -v also shows tracebacks.")
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            min=1,
            help="Intra-op threads for torch, for the whole process (1 suits modelshield's small models, above all "
            "on busy machines).",
        ),
    ] = DEFAULT_THREADS,
) -> None:
    """modelshield: a multi-layered security framework for machine-learning systems."""
    configure_torch_threads(threads)
    state.verbose = verbose
    LOG_HANDLER.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    package = logging.getLogger("modelshield")
    package.setLevel(LOG_HANDLER.level)
    if LOG_HANDLER not in package.handlers:
        package.addHandler(LOG_HANDLER)


def _register_commands() -> None:
    from modelshield.cli import attacks, audit, bom, crypt, data, harden, registry, scan, signing, targets

    attacks.register(app)
    audit.register(app)
    bom.register(app)
    crypt.register(app)
    data.register(app)
    harden.register(app)
    registry.register(app)
    scan.register(app)
    signing.register(app)
    targets.register(app)


_register_commands()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.verbose = 0
    try:
        app(args=args, prog_name="modelshield")  # usage errors print and exit 2 here
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except ModelShieldError as exc:
        _report(exc, f"{_one_line(exc.message)} Fix: {_one_line(exc.remedy)}")
    except OSError as exc:
        _report(exc, _one_line(str(exc)))
    return EXIT_USAGE


def _report(exc: BaseException, message: str) -> None:
    if state.verbose:
        stderr.print(printable("".join(traceback.format_exception(exc))), markup=False, highlight=False)
    stderr.print(f"error: {printable(message)}", markup=False, highlight=False, soft_wrap=True)
