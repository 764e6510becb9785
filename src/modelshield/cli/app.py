"""The root Typer app, global options and error handling; each command group lives in its own module.

    >>> from modelshield.cli.app import main
    >>> main(["targets", "--help"])  # doctest: +SKIP

Command modules import their shared state from :mod:`modelshield.cli._console`, never from here.

Command modules load lazily: the root group knows every command's name and the module that registers it
(:data:`COMMAND_MODULES`), and imports a module only when one of its commands is resolved. ``modelshield scan
FILE`` therefore imports the scanner and nothing of the audit, data or training layers (numpy, torch, Jinja);
``modelshield --help`` resolves every command and lists them all, with the same text as before.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any, TypeAlias

import typer
from typer.core import TyperGroup

from modelshield._version import __version__
from modelshield.cli._console import configure, guarded
from modelshield.cli._threads import DEFAULT_THREADS, configure_torch_threads
from modelshield.cli.options import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE

__all__ = ["COMMAND_MODULES", "EXIT_CLEAN", "EXIT_FINDINGS", "EXIT_USAGE", "app", "load_commands", "main"]

#: Each top-level command, in the order ``--help`` lists it, and the module under ``modelshield.cli`` whose
#: ``register(app)`` defines it. tests/cli/test_startup.py checks that the table and the modules agree.
COMMAND_MODULES: dict[str, str] = {
    "attacks": "attacks",
    "audit": "audit",
    "bom": "bom",
    "encrypt": "crypt",
    "decrypt": "crypt",
    "harden": "harden",
    "scan": "scan",
    "keygen": "signing",
    "sign": "signing",
    "verify": "signing",
    "targets": "targets",
    "checks": "targets",
    "data": "data",
    "registry": "registry",
    "serve": "serve",
    "gateway": "gateway",
    "monitor": "monitor",
}


#: A click command. Typer vendors click from 0.26 on (``typer._click``) and used the ``click`` package before, so
#: no one public import names the class for every supported Typer; the commands come from Typer either way.
Command: TypeAlias = Any


def _noop() -> None:
    """The callback of a staging app; with one, Typer always builds a group, even around a single command."""


def load_commands(module: str) -> dict[str, Command]:
    """The click commands that ``modelshield.cli.<module>``'s ``register`` defines, built as the root app would."""
    staging = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
    staging.callback()(_noop)
    importlib.import_module(f"modelshield.cli.{module}").register(staging)
    group = typer.main.get_command(staging)
    if not isinstance(group, TyperGroup):  # never: an app with a callback is always a group
        raise TypeError(f"Typer built a {type(group).__name__} for modelshield.cli.{module}, not a group.")
    return dict(group.commands)


class _LazyGroup(TyperGroup):
    """The root group: lists every command of :data:`COMMAND_MODULES`, imports a command's module on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMAND_MODULES, *(name for name in self.commands if name not in COMMAND_MODULES)]

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            for name, command in load_commands(module).items():
                self.commands.setdefault(name, command)
        return self.commands.get(cmd_name)


app = typer.Typer(
    cls=_LazyGroup,
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
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="More output: -v adds progress logs and error tracebacks, -vv debug."
        ),
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
    configure(verbose)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI through Typer with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    configure(0)

    def run() -> int:
        try:
            app(args=args, prog_name="modelshield")  # usage errors print and exit 2 here
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        return EXIT_USAGE  # never: Typer ends every run with SystemExit

    return guarded(run)
