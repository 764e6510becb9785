"""The ``modelshield`` command line: ``main(argv)`` runs it in-process and returns the exit code.

    >>> from modelshield.cli import main
    >>> main(["--version"])  # doctest: +SKIP
    modelshield 0.1.0
    0

Exit codes: 0 clean, 1 findings at or above ``--fail-on`` (or an incomplete audit), 2 usage or input error.

A plain ``scan`` (one :func:`~modelshield.cli.scan_core.parse_scan_args` accepts) runs without importing Typer,
Click or Rich, since CI gates start the command once per file; every other command line goes to the Typer app,
:func:`modelshield.cli.app.main`.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["scan"]:
        from modelshield.cli.scan_core import parse_scan_args

        scan = parse_scan_args(args[1:])
        if scan is not None:
            from modelshield.cli._console import configure, guarded
            from modelshield.cli._threads import DEFAULT_THREADS, configure_torch_threads
            from modelshield.cli.scan_core import run_scan

            configure_torch_threads(DEFAULT_THREADS)  # what the Typer app's callback does with the defaults
            configure(0)
            return guarded(lambda: run_scan(scan))
    from modelshield.cli.app import main as typer_main

    return typer_main(args)
