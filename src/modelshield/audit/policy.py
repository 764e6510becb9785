"""Release policies: the rules a model must meet to ship, read from TOML and judged against an audit report.

    >>> from modelshield.audit.policy import ReleasePolicy
    >>> policy = ReleasePolicy.from_toml('''
    ... fail_on = "high"
    ... [[rule]]
    ... finding = "baseline.performance"
    ... metric = "test_accuracy"
    ... min = 0.9
    ... ''')
    >>> [rule.rule for rule in policy.evaluate(report).rules]  # doctest: +SKIP
    ['fail_on', 'require_complete', 'baseline.performance test_accuracy >= 0.9']

The format (every key optional; an unknown key is an error that names it)::

    fail_on = "medium"          # fails when any finding is at or above this severity (info < low < medium < ...)
    require_complete = true     # the default: fails when a check failed to run (an incomplete audit)
    require_signature = true    # fails unless the audit verified the model file's signature (signature.verified)
    trusted_keys = ["3f1c..."]  # ... with one of these keys (SHA-256 fingerprints; implies require_signature)

    [[rule]]                              # a bound on a metric that a finding carries (repeatable)
    name = "robust at eps 0.25"           # optional: how reports name the rule
    finding = "evasion.robust-accuracy"   # the finding's id; or check = "evasion": every finding of that check
    metric = "robust_accuracy"            # a key of the finding's metrics
    at = "0.25"                           # for a metric that is a table (epsilon -> value): the row
    min = 0.7                             # and/or max = ...

A metric rule fails closed: when the report has no such finding, or the finding no such metric, or the value is
not a number, the rule fails and says why. With ``check = ...`` every finding of that check that carries the
metric must meet the bound, and the worst value is the one reported.

Evaluating a policy gives a :class:`~modelshield.findings.PolicyResult` (JSON-serialisable data): each rule's
name, the measured value, the bound and, in words, why it passed or failed. ``modelshield audit --policy`` and
``modelshield registry promote --policy`` both use :meth:`ReleasePolicy.evaluate`.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from modelshield.errors import FileFormatError
from modelshield.findings import CheckStatus, Finding, JSONValue, PolicyResult, Report, RuleResult, Severity

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["MetricRule", "ReleasePolicy", "evaluate_policy"]

_MAX_POLICY_BYTES = 1 << 20
_DOCS = "See the release policy format in docs/cli.md (Release policies)."
#: Keys people reach for that the format spells differently.
_SYNONYMS = {
    "max_severity": "fail_on",
    "severity": "fail_on",
    "rules": "rule",
    "signed": "require_signature",
    "keys": "trusted_keys",
    "trusted_key": "trusted_keys",
    "minimum": "min",
    "maximum": "max",
    "finding_id": "finding",
    "key": "at",
    "epsilon": "at",
    "eps": "at",
}
_SIGNATURE_VERIFIED = "signature.verified"


def _number(value: float) -> str:
    return f"{value:g}"


class MetricRule(BaseModel):
    """A bound on one metric of one finding (``finding``), or of every finding of one check (``check``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    finding: str | None = None
    check: str | None = None
    metric: Annotated[str, Field(min_length=1)]
    at: str | float | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if (self.finding is None) == (self.check is None):
            raise ValueError('name exactly one of finding = "<finding id>" or check = "<check name>"')
        if self.min is None and self.max is None:
            raise ValueError("give a bound: min = ... or max = ... (or both)")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("bounds must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({_number(self.min)}) is above max ({_number(self.max)})")
        return self

    @property
    def subject(self) -> str:
        """What the rule measures, e.g. ``evasion.robust-accuracy robust_accuracy[0.25]``."""
        row = f"[{self.at if isinstance(self.at, str) else _number(self.at)}]" if self.at is not None else ""
        return f"{self.finding or self.check} {self.metric}{row}"

    @property
    def bound(self) -> str:
        """The bound in symbols: ``>= 0.7``, ``<= 0.01`` or ``between 0.1 and 0.9``."""
        if self.min is not None and self.max is not None:
            return f"between {_number(self.min)} and {_number(self.max)}"
        if self.min is not None:
            return f">= {_number(self.min)}"
        return f"<= {_number(self.max if self.max is not None else math.nan)}"

    @property
    def label(self) -> str:
        return self.name or f"{self.subject} {self.bound}"

    def meets(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def worst(self, values: Sequence[float]) -> float:
        """The value of ``values`` furthest from meeting the bound (the lowest against a min, else the highest)."""
        if self.min is not None:
            below = [v for v in values if v < self.min]
            if below or self.max is None:
                return min(values)
        return max(values)

    def evaluate(self, report: Report) -> RuleResult:
        """This rule against ``report``; it fails when there is nothing to measure."""
        if self.finding is not None:
            findings = [f for f in report.findings if f.id == self.finding]
            what = f"finding {self.finding}"
            check_name = self.finding.split(".", 1)[0]
        else:
            findings = [f for f in report.findings if f.check == self.check]
            what = f"finding of the {self.check} check"
            check_name = str(self.check)
        if not findings:
            return self._absent(f"the report has no {what}{_why_absent(report, check_name)}")
        values: list[float] = []
        for finding in findings:
            value, problem = self._value(finding)
            if problem and (self.finding is not None or self.metric in finding.metrics):
                return self._absent(problem)  # a value that is there but unusable fails the rule
            if value is not None:
                values.append(value)
        if not values:
            return self._absent(f"no {what} carries the metric {self.metric!r}{self._row_words()}")
        worst = self.worst(values)
        passed = all(self.meets(v) for v in values)
        verdict = "meets" if passed else "does not meet"
        return RuleResult(
            rule=self.label,
            passed=passed,
            measured=worst,
            bound=self.bound,
            message=f"{self.subject} is {_number(worst)}, which {verdict} the bound {self.bound}.",
        )

    def _row_words(self) -> str:
        return f" with a row {self.at!r}" if self.at is not None else ""

    def _absent(self, why: str) -> RuleResult:
        return RuleResult(
            rule=self.label,
            passed=False,
            measured=None,
            bound=self.bound,
            message=f"{self.subject} was not measured: {why}; a rule with nothing to measure fails.",
        )

    def _value(self, finding: Finding) -> tuple[float | None, str]:
        """The metric's value in ``finding``, or None and why not."""
        if self.metric not in finding.metrics:
            known = ", ".join(sorted(finding.metrics)) or "none"
            return None, f"{finding.id} has no metric {self.metric!r} (its metrics: {known})"
        value: JSONValue = finding.metrics[self.metric]
        if self.at is not None:
            if not isinstance(value, Mapping):
                return None, f"{finding.id} {self.metric} is a single value, not a table: drop `at`"
            row = _row(value, self.at)
            if row is None:
                rows = ", ".join(str(k) for k in value) or "none"
                return None, f"{finding.id} {self.metric} has no row {self.at!r} (its rows: {rows})"
            value = value[row]
        if isinstance(value, Mapping):
            rows = ", ".join(str(k) for k in value)
            return None, f"{finding.id} {self.metric} is a table: name its row with `at` (one of: {rows})"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None, f"{finding.id} {self.metric} is {value!r}, not a number"
        return float(value), ""


def _row(table: Mapping[str, JSONValue], at: str | float) -> str | None:
    """The key of ``table`` that ``at`` names: the same text, or the same number (``0.25`` and ``"0.250"``)."""
    if str(at) in table:
        return str(at)
    try:
        wanted = float(at)
    except ValueError:
        return None
    for key in table:
        try:
            if math.isclose(float(key), wanted, rel_tol=1e-9, abs_tol=1e-12):
                return key
        except ValueError:
            continue
    return None


def _why_absent(report: Report, check: str) -> str:
    run = next((c for c in report.checks if c.name == check), None)
    if run is None:
        return f" (the {check} check did not run in this audit)"
    if run.status in (CheckStatus.SKIPPED, CheckStatus.ERROR):
        reason = f": {run.reason}" if run.reason else ""
        return f" (the {check} check was {'skipped' if run.status is CheckStatus.SKIPPED else 'in error'}{reason})"
    return ""


class ReleasePolicy(BaseModel):
    """The rules a release must meet (see the module's documentation for the TOML format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_on: Severity | None = None
    require_complete: bool = True
    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()
    rules: Annotated[tuple[MetricRule, ...], Field(alias="rule")] = ()

    _source: str = PrivateAttr(default="(inline)")
    _sha256: str = PrivateAttr(default="")

    @field_validator("fail_on", mode="before")
    @classmethod
    def _severity(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_keys", mode="before")
    @classmethod
    def _fingerprints(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        keys = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} is not a key fingerprint (a string of 64 hex digits)")
            key = item.strip().lower().removeprefix("sha256:")
            if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
                raise ValueError(
                    f"{item!r} is not a full SHA-256 key fingerprint (64 hex digits, as `modelshield keygen` prints)"
                )
            keys.append(key)
        return tuple(keys)

    @property
    def source(self) -> str:
        """The file the policy was read from (its name), or ``(inline)``."""
        return self._source

    @property
    def sha256(self) -> str:
        """SHA-256 of the policy's text, so a result names the exact policy it was judged by."""
        return self._sha256

    @classmethod
    def from_toml(cls, text: str, *, source: str = "(inline)") -> ReleasePolicy:
        """A policy from TOML text; :class:`FileFormatError` naming the key and the fix on any mistake."""
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FileFormatError(f"The release policy {source} is not valid TOML: {exc}.", remedy=_DOCS) from None
        try:
            policy = cls.model_validate(raw)
        except ValidationError as exc:
            errors = exc.errors()
            first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo, then its cost
            message, remedy = _explain(first)
            raise FileFormatError(f"The release policy {source}: {message}", remedy=remedy) from None
        policy._source = source
        policy._sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return policy

    @classmethod
    def load(cls, path: Path) -> ReleasePolicy:
        """Read a policy file (UTF-8 TOML, at most 1 MiB); :class:`FileFormatError` on any mistake."""
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise FileFormatError(
                f"Cannot read the release policy {path}: {exc.strerror}.", remedy="Check the --policy path."
            ) from None
        if len(data) > _MAX_POLICY_BYTES:
            raise FileFormatError(f"The release policy {path} is larger than 1 MiB.", remedy=_DOCS)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FileFormatError(f"The release policy {path} is not UTF-8 text.", remedy=_DOCS) from None
        return cls.from_toml(text, source=path.name)

    def evaluate(self, report: Report, *, signer: str | None = None) -> PolicyResult:
        """Judge ``report``: every rule's outcome, in the order fail_on, require_complete, signature, metric rules.

        ``signer`` is the SHA-256 fingerprint of the public key that the caller verified the model's signature
        with (the audit's ``--public-key``, or the key ``registry promote`` verified the stored model with); with
        ``trusted_keys`` it must be one of them. Without it, only a ``signature.verified`` finding in the report
        vouches for the signature, and no key is known, so ``trusted_keys`` fail.
        """
        results: list[RuleResult] = []
        if self.fail_on is not None:
            results.append(_severity_rule(report, self.fail_on))
        if self.require_complete:
            results.append(_complete_rule(report))
        if self.require_signature or self.trusted_keys:
            results.append(_signature_rule(report, signer, self.trusted_keys))
        results += [rule.evaluate(report) for rule in self.rules]
        return PolicyResult(policy=self.source, sha256=self.sha256, rules=tuple(results))


def evaluate_policy(path: Path, report: Report, *, signer: str | None = None) -> PolicyResult:
    """Read the policy at ``path`` and judge ``report`` by it (:meth:`ReleasePolicy.evaluate`)."""
    return ReleasePolicy.load(path).evaluate(report, signer=signer)


def _severity_rule(report: Report, threshold: Severity) -> RuleResult:
    hits = sorted(report.at_or_above(threshold), key=lambda f: (-f.severity.rank, f.id))
    bound = f"no finding at or above {threshold.value}"
    if not hits:
        worst = report.max_severity
        return RuleResult(
            rule="fail_on",
            passed=True,
            measured=worst.value if worst else "none",
            bound=bound,
            message=f"No finding is at or above {threshold.value} (worst: {worst.value if worst else 'none'}).",
        )
    shown = ", ".join(f"{f.id} ({f.severity.value})" for f in hits[:5]) + (" and more" if len(hits) > 5 else "")
    return RuleResult(
        rule="fail_on",
        passed=False,
        measured=hits[0].severity.value,
        bound=bound,
        message=f"{len(hits)} finding(s) at or above {threshold.value}: {shown}.",
    )


def _complete_rule(report: Report) -> RuleResult:
    failed = [c for c in report.checks if c.status is CheckStatus.ERROR]
    if not failed:
        return RuleResult(
            rule="require_complete",
            passed=True,
            measured="complete",
            bound="every check ran",
            message=f"Every one of the {len(report.checks)} checks ran (or did not apply to this target).",
        )
    names = ", ".join(c.name for c in failed)
    return RuleResult(
        rule="require_complete",
        passed=False,
        measured=f"incomplete: {names}",
        bound="every check ran",
        message=f"The audit is incomplete: check(s) failed to run: {names}.",
    )


def _signature_rule(report: Report, signer: str | None, trusted: Sequence[str]) -> RuleResult:
    rule = "trusted_keys" if trusted else "require_signature"
    bound = "signed by a trusted key" if trusted else "signature verified"
    signature = [f for f in report.findings if f.check == "signature"]
    verified = any(f.id == _SIGNATURE_VERIFIED for f in signature)
    if signer is None and not verified:
        state = ", ".join(f.id for f in signature) or "no signature check in the report"
        return RuleResult(
            rule=rule,
            passed=False,
            measured=state,
            bound=bound,
            message=f"The model's signature was not verified ({state}); sign the model and pass --public-key.",
        )
    if not trusted:
        key = f" with key {signer[:16]}" if signer else ""
        return RuleResult(
            rule=rule, passed=True, measured="verified", bound=bound, message=f"The signature verified{key}."
        )
    if signer is None:
        return RuleResult(
            rule=rule,
            passed=False,
            measured="verified, key unknown",
            bound=bound,
            message="The signature verified, but the report does not say with which key; pass --public-key.",
        )
    ok = signer.lower() in trusted
    return RuleResult(
        rule=rule,
        passed=ok,
        measured=signer,
        bound=bound,
        message=f"The signature verified with key {signer[:16]}, which is {'' if ok else 'not '}a trusted key.",
    )


def _where(loc: Sequence[int | str]) -> str:
    """``("rule", 0, "metric")`` -> ``[[rule]] #1, metric``."""
    parts: list[str] = []
    items = list(loc)
    while items:
        head = items.pop(0)
        if head == "rule" and items and isinstance(items[0], int):
            parts.append(f"[[rule]] #{int(items.pop(0)) + 1}")
        else:
            parts.append(str(head))
    return ", ".join(parts) or "the top level"


def _explain(error: ErrorDetails) -> tuple[str, str]:
    """One pydantic error as a sentence naming the key, and the fix."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        allowed = _allowed(loc[:-1])
        guess = _SYNONYMS.get(key) or next(iter(difflib.get_close_matches(key, allowed, n=1)), None)
        where = _where(loc[:-1])
        place = "" if where == "the top level" else f" in {where}"
        hint = f" Did you mean {guess!r}?" if guess else ""
        return (
            f"unknown key {key!r}{place}.{hint}",
            f"Use only these keys{place}: {', '.join(allowed)}. {_DOCS}",
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    where = _where(loc)
    if kind == "missing" and loc:
        place = _where(loc[:-1])
        inside = "" if place == "the top level" else f"{place}: "
        return f"{inside}the key {str(loc[-1])!r} is missing.", _DOCS
    if where == "the top level" or not loc:
        return f"{message}.", _DOCS
    if kind == "enum" and loc and loc[-1] == "fail_on":
        return f"{where}: {message}.", f"Use a severity: {', '.join(s.value for s in Severity)}."
    return f"{where}: {message}.", _DOCS


def _allowed(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] = MetricRule if "rule" in loc else ReleasePolicy
    return [field.alias or name for name, field in model.model_fields.items()]
