"""Run audit checks against a target and collect a :class:`~modelshield.findings.Report`.

    >>> from modelshield.audit import Auditor, AuditOptions
    >>> from modelshield.zoo import load_target
    >>> report = Auditor(AuditOptions(checks=("integrity",))).run(load_target("zoo:cancer-gbm"))  # doctest: +SKIP

Each check gets its own random generator, seeded from the audit seed and the check's name, so a check's result
does not depend on which other checks ran. A check that raises is recorded as an error (the report is then
incomplete) and the audit goes on with the next one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

import numpy as np

from modelshield._version import __version__
from modelshield.audit.interface import AuditOptions, Budget, CheckContext
from modelshield.audit.registry import AnyCheck, CheckRegistry, default_registry
from modelshield.findings import CheckRun, CheckStatus, Finding, JSONValue, Report, Severity
from modelshield.target import Target

__all__ = ["AuditProgress", "Auditor", "ProgressCallback"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditProgress:
    """Where an audit is: check ``index`` (from 0) of ``total``, named ``check`` ("" once all are done), and inside
    it ``step``, ``done`` of ``steps`` (0: not known); ``elapsed_s`` since the audit started."""

    check: str
    index: int
    total: int
    step: str = ""
    done: int = 0
    steps: int = 0
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float:
        """The part of the audit done, counting each check as an equal share."""
        inside = self.done / self.steps if self.steps else 0.0
        return min(1.0, (self.index + min(inside, 1.0)) / self.total) if self.total else 1.0


#: Called at the start of each check, as the check reports steps inside it, and once at the end (check "").
ProgressCallback = Callable[[AuditProgress], None]

_VERSIONED = ("numpy", "scikit-learn", "torch", "onnxruntime", "skops", "safetensors")


def _versions() -> dict[str, str]:
    versions = {"modelshield": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _settings_record(settings: object) -> JSONValue:
    """A check's settings as JSON (a frozen dataclass of plain values, or anything else by its repr)."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        record: JSONValue = json.loads(json.dumps(dataclasses.asdict(settings), default=str))
        return record
    return repr(settings)


def _reporter(
    progress: ProgressCallback | None, check: str, index: int, total: int, t0: float
) -> Callable[[str, int, int], None]:
    """The step callback a check gets: each call becomes an :class:`AuditProgress` for ``progress``."""

    def report(step: str, done: int, steps: int) -> None:
        if progress is not None:
            progress(AuditProgress(check, index, total, step, done, steps, time.perf_counter() - t0))

    return report


class Auditor:
    """Runs the checks named in its :class:`AuditOptions` (from ``registry``, default: the built-in checks)."""

    def __init__(self, options: AuditOptions | None = None, *, registry: CheckRegistry | None = None) -> None:
        self.options = options or AuditOptions()
        self.registry = registry or default_registry()
        self._checks = self.registry.select(self.options.checks)  # unknown names fail here, before any work

    @property
    def checks(self) -> tuple[AnyCheck, ...]:
        return tuple(self._checks)

    def run(self, target: Target, *, progress: ProgressCallback | None = None) -> Report:
        budget = Budget.parse(self.options.budget)
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        runs: list[CheckRun] = []
        findings: list[Finding] = []
        total = len(self._checks)
        for i, check in enumerate(self._checks):
            report_step = _reporter(progress, check.name, i, total, t0)
            report_step("", 0, 0)
            unmet = check.unmet(target)
            if unmet:
                runs.append(CheckRun(check.name, CheckStatus.SKIPPED, 0.0, "; ".join(unmet)))
                log.info("check %s skipped: %s", check.name, "; ".join(unmet))
                continue
            context = CheckContext(
                target=target,
                budget=budget,
                seed=self.options.seed,
                rng=np.random.default_rng([self.options.seed, zlib.crc32(check.name.encode())]),
                cache_dir=self.options.cache_dir,
                progress=report_step,
            )
            log.info("check %s (%d of %d) started", check.name, i + 1, total)
            t = time.perf_counter()
            try:
                found = list(check.run(context))
            except Exception as exc:  # one broken check must not lose the others' results
                log.debug("Check %s failed", check.name, exc_info=True)
                runs.append(
                    CheckRun(check.name, CheckStatus.ERROR, time.perf_counter() - t, f"{type(exc).__name__}: {exc}")
                )
                continue
            findings.extend(found)
            status = CheckStatus.FINDINGS if any(f.severity >= Severity.LOW for f in found) else CheckStatus.PASSED
            runs.append(CheckRun(check.name, status, time.perf_counter() - t))
            log.info("check %s %s in %.1f s", check.name, status.value, time.perf_counter() - t)
        if progress is not None:
            progress(AuditProgress("", total, total, elapsed_s=time.perf_counter() - t0))
        return Report(
            target=target.info(),
            findings=tuple(findings),
            checks=tuple(runs),
            seed=self.options.seed,
            budget=budget.value,
            started_at=started.isoformat(timespec="seconds"),
            duration_s=time.perf_counter() - t0,
            versions=_versions(),
            config={
                "checks": [c.name for c in self._checks],
                "budget": budget.value,
                "seed": self.options.seed,
                "settings": {c.name: _settings_record(c.settings(budget)) for c in self._checks},
            },
        )
