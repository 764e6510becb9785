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
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from modelshield.reporting.interface import printable

if TYPE_CHECKING:
    from rich.console import Console

    from modelshield.audit import AuditProgress, ProgressCallback

__all__ = ["LINE_EVERY_S", "audit_progress", "describe", "step_progress"]

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
        with _bar(console) as update:
            yield lambda event: update(event.fraction, describe(event))
        return
    lines = _Lines("audit")
    try:
        yield lambda event: lines.write(event.check, describe(event), event.elapsed_s)
    finally:
        lines.close()


@contextmanager
def step_progress(
    command: str, console: Console | None = None, *, enabled: bool = True
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A callback (step, steps done, steps in all; 0 if unknown) for a long command's steps, shown on ``console``
    as :func:`audit_progress` shows an audit; None when not ``enabled``."""
    if not enabled:
        yield None
        return
    t0 = time.monotonic()

    def text(step: str, done: int, total: int) -> str:
        return printable(f"[{done + 1}/{total}] {step}" if total and done < total else step)

    if console is not None and console.is_terminal:
        with _bar(console) as update:
            yield lambda step, done, total: update(
                done / total if total else 0.0, f"{command}: {text(step, done, total)}"
            )
        return
    lines = _Lines(command)
    try:
        yield lambda step, done, total: lines.write(step, text(step, done, total), time.monotonic() - t0)
    finally:
        lines.close()


@contextmanager
def _bar(console: Console) -> Iterator[Callable[[float, str], None]]:
    """A transient bar on a terminal: update(fraction done, description)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=1.0)
        yield lambda fraction, description: bar.update(task, completed=fraction, description=description)


class _Lines:
    """Writes a progress line to standard error when the step changes, and at most every LINE_EVERY_S otherwise;
    while a step runs without news, a heartbeat repeats its line every LINE_EVERY_S with the time so far (a step
    such as training a model says nothing until it ends)."""

    def __init__(self, command: str) -> None:
        self._command = command
        self._key: str | None = None
        self._text = ""
        self._last = float("-inf")
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heart = threading.Thread(target=self._beat, name=f"{command}-progress", daemon=True)
        self._heart.start()

    def write(self, key: str, text: str, elapsed_s: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._t0 = now - elapsed_s
            if key == self._key and now - self._last < LINE_EVERY_S:
                return
            self._key, self._text = key, text
            self._emit(now)

    def _emit(self, now: float) -> None:
        self._last = now
        sys.stderr.write(f"{self._command} ({now - self._t0:.0f} s) {self._text}\n")
        sys.stderr.flush()

    def _beat(self) -> None:
        while not self._stop.wait(LINE_EVERY_S / 5):
            with self._lock:
                now = time.monotonic()
                if self._key is not None and now - self._last >= LINE_EVERY_S:
                    self._emit(now)

    def close(self) -> None:
        """Stop the heartbeat."""
        self._stop.set()
        self._heart.join()
