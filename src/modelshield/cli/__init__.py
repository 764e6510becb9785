"""The ``modelshield`` command line: ``main(argv)`` runs it in-process and returns the exit code.

    >>> from modelshield.cli import main
    >>> main(["--version"])  # doctest: +SKIP
    modelshield 0.1.0
    0

Exit codes: 0 clean, 1 findings at or above ``--fail-on`` (or an incomplete audit), 2 usage or input error.
"""

from __future__ import annotations

from modelshield.cli.app import main

__all__ = ["main"]
