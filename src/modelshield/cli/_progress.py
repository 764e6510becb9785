"""Progress of a long command: a bar on a terminal, a line every few seconds anywhere else (CI logs, pipes).

    >>> from modelshield.cli._progress import audit_progress
    >>> with audit_progress(enabled=False) as progress:
    ...     progress is None
    True

A command that runs for minutes must show that it is alive and how far it is, also when its standard error is a
file or a pipe: there a bar would be invisible (or a mess of control sequences), so a plain line is written when
the check changes and at most every :data:`LINE_EVERY_S` seconds while it runs. Check and step names come from
plug-ins: they are passed through :func:`~modelshield.reporting.interface.printable`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from rich.console import Console

    from modelshield.audit import AuditProgress, ProgressCallback

__all__ = ["LINE_EVERY_S", "audit_progress", "describe"]

#: Seconds between two progress lines when standard error is not a terminal (a new check always gets one).
LINE_EVERY_S = 5.0


def describe(event: AuditProgress) -> str:
    """One line for a progress event: ``[2/9] poisoning: retraining 3/8``."""
    if not event.check:
        return f"[{event.total}/{event.total}] done"
    text = f"[{event.index + 1}/{event.total}] {event.check}"
    if event.step:
        text += f": {event.step}"
        if event.steps:
            text += f" {event.done}/{event.steps}"
    return printable(text)


@contextmanager
def audit_progress(console: Console | None = None, *, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A progress callback for an audit shown on ``console`` (standard error), or None when not ``enabled``."""
    if not enabled:
        yield None
        return
    if console is not None and console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("Auditing", total=1.0)

            def update(event: AuditProgress) -> None:
                bar.update(task, completed=event.fraction, description=describe(event))

            yield update
        return
    yield _Lines()


class _Lines:
    """Writes a progress line to standard error when the check changes, and at most every LINE_EVERY_S otherwise."""

    def __init__(self) -> None:
        self._check: str | None = None
        self._last = float("-inf")

    def __call__(self, event: AuditProgress) -> None:
        now = time.monotonic()
        if event.check == self._check and now - self._last < LINE_EVERY_S:
            return
        self._check, self._last = event.check, now
        sys.stderr.write(f"audit ({event.elapsed_s:.0f} s) {describe(event)}\n")
        sys.stderr.flush()
