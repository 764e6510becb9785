"""Automated response with a human in the loop: a policy turns incidents into actions; some wait for a reviewer.

    >>> from modelshield.gateway.response import ResponsePolicy
    >>> policy = ResponsePolicy.default()
    >>> [rule.action.value for rule in policy.rules]
    ['suspend', 'suspend', 'label-only', 'suspend', 'review']

A policy (TOML, ``[response] policy``) is a list of rules, the first that matches an incident wins::

    [[rule]]
    name = "suspend thieves"
    techniques = ["AML.T0024.002", "AML.T0043.001"]   # any technique when absent
    min_risk = 50                                     # 0..100, the incident's risk
    min_severity = "high"
    action = "suspend"          # throttle | label-only | review | suspend | block-pattern
    approval = false            # true: the action waits in the review queue until a reviewer approves it
    duration_s = 86400          # how long it holds once active (0: until lifted)
    requests_per_second = 1     # throttle only
    radius = 0.5                # block-pattern only: rows within this L2 distance (reference standard deviations)

An incident gets each action at most once. Actions live in the gateway's SQL database (table ``gateway_actions``),
so a suspension written by one worker is read by every worker and replica: each keeps a snapshot of the active
actions refreshed every ``refresh_s`` (0.25 s by default; the effect is seen everywhere within one second).
``review`` is an action that does nothing but ask for a person; ``approval = true`` on any other action makes it
wait as ``pending`` until ``modelshield gateway review approve ID`` (or the admin API) makes it active, or deny
refuses it. Every action, decision and reviewer is written to the audit log by the gateway.

What the actions do to the actor's requests (for a group of keys, to every client in it): *suspend* refuses them
(403), *throttle* holds them to ``requests_per_second`` (429 beyond), *label-only* releases the label and no
probabilities, *block-pattern* refuses any row within ``radius`` of the rows that raised the incident (403).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import threading
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelshield._internal.sql import SqlStore, open_store
from modelshield.errors import FileFormatError, InvalidInputError, InvalidParameterError
from modelshield.findings import Severity
from modelshield.monitoring.alerts import Incident
from modelshield.monitoring.interface import Technique

__all__ = [
    "ActionBoard",
    "ActionKind",
    "ActionStore",
    "ResponseAction",
    "ResponsePolicy",
    "Rule",
    "Sanctions",
    "pattern_hits",
]

log = logging.getLogger(__name__)

_MAX_POLICY_BYTES = 1 << 20
_MAX_PATTERN_ROWS = 16


class ActionKind(enum.StrEnum):
    THROTTLE = "throttle"
    LABEL_ONLY = "label-only"
    REVIEW = "review"
    SUSPEND = "suspend"
    BLOCK_PATTERN = "block-pattern"


class Rule(BaseModel):
    """One rule of a response policy (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=100)]
    techniques: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    min_risk: Annotated[float, Field(ge=0, le=100)] = 0.0
    min_severity: Literal["info", "low", "medium", "high", "critical"] = "info"
    action: ActionKind
    approval: bool = False
    duration_s: Annotated[float, Field(ge=0, le=366 * 86_400)] = 86_400.0
    requests_per_second: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    radius: Annotated[float, Field(gt=0, le=1e6)] = 0.5

    def matches(self, incident: Incident) -> bool:
        return (
            (not self.techniques or incident.technique in self.techniques)
            and (not self.detectors or any(d in self.detectors for d in incident.detectors))
            and incident.risk >= self.min_risk
            and incident.severity.rank >= Severity(self.min_severity).rank
        )


class ResponsePolicy(BaseModel):
    """The rules, first match wins (an incident no rule matches gets no action)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: Annotated[tuple[Rule, ...], Field(alias="rule")] = ()

    @classmethod
    def default(cls) -> ResponsePolicy:
        """The policy when none is configured, first match wins:

        - evasion probing (a decision-boundary walk) at risk 50 and high severity: suspend at once;
        - theft and probing (extraction, membership, attribute inference) corroborated, at risk 70 and high
          severity (two detectors agree, or one that analysts keep confirming): suspend at once;
        - the same techniques at risk 25 and high severity: answer labels only (a thief's copy learns far less from
          labels); a lone medium signal (a new key drawing answers fast, which a new batch client does too) is not
          enough to degrade anyone's answers unseen: it goes to a reviewer (the last rule);
        - one actor behind many keys, or a shared key, at high severity: suspend once a reviewer approves;
        - anything else of medium severity and up: ask a reviewer to look.

        An incident that grows (a second detector agrees) moves up the list: labels only, then suspended.
        """
        theft = (Technique.EXTRACTION, Technique.MEMBERSHIP, Technique.INVERSION)
        return cls.model_validate(
            {
                "rule": [
                    {
                        "name": "suspend evasion probing",
                        "techniques": (Technique.EVASION,),
                        "min_risk": 50,
                        "min_severity": "high",
                        "action": "suspend",
                    },
                    {
                        "name": "suspend corroborated theft",
                        "techniques": theft,
                        "min_risk": 70,
                        "min_severity": "high",
                        "action": "suspend",
                    },
                    {
                        "name": "labels only for suspected theft",
                        "techniques": theft,
                        "min_risk": 25,
                        "min_severity": "high",
                        "action": "label-only",
                    },
                    {
                        "name": "suspend shared keys and sybils after review",
                        "techniques": (Technique.VALID_ACCOUNTS,),
                        "min_severity": "high",
                        "action": "suspend",
                        "approval": True,
                    },
                    {
                        "name": "a person looks at the rest",
                        "min_severity": "medium",
                        "action": "review",
                        "approval": True,
                    },
                ]
            }
        )

    @classmethod
    def load(cls, path: Path) -> ResponsePolicy:
        """Read a policy file; :class:`FileFormatError` naming the rule and key on any mistake."""
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise FileFormatError(f"Cannot read the response policy {path}: {exc.strerror}.") from None
        if len(data) > _MAX_POLICY_BYTES:
            raise FileFormatError(f"The response policy {path} is larger than 1 MiB.")
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise FileFormatError(f"The response policy {path} is not valid TOML: {exc}.") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise FileFormatError(
                f"The response policy {path}: {where}: {first['msg']}.",
                remedy="See the response policy format in docs/monitoring.md.",
            ) from None

    def actions_for(self, incident: Incident) -> Rule | None:
        """The first rule that matches ``incident``."""
        return next((rule for rule in self.rules if rule.matches(incident)), None)


@dataclass(frozen=True)
class ResponseAction:
    """An action on an actor's requests, as stored: pending review, active, denied, lifted or expired."""

    id: int
    incident_id: int | None
    actor: str
    clients: tuple[str, ...]
    kind: ActionKind
    status: str
    rule: str
    reason: str
    created: float
    expires: float | None
    decided_by: str | None
    decided_at: float | None
    params: Mapping[str, Any] = field(default_factory=dict)

    def active_at(self, now: float) -> bool:
        return self.status == "active" and (self.expires is None or now < self.expires)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "incident": self.incident_id,
            "actor": self.actor,
            "clients": list(self.clients),
            "action": self.kind.value,
            "status": self.status,
            "rule": self.rule,
            "reason": self.reason,
            "created": self.created,
            "expires": self.expires,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "params": {k: v for k, v in self.params.items() if k != "rows"},
        }


def _table() -> Any:
    from sqlalchemy import Column, Double, Integer, MetaData, String, Table, Text

    metadata = MetaData()
    Table(
        "gateway_actions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("incident_id", Integer, nullable=True, index=True),
        Column("actor", String(200), nullable=False),
        Column("clients", Text, nullable=False),
        Column("kind", String(20), nullable=False),
        Column("status", String(10), nullable=False, index=True),
        Column("rule", String(100), nullable=False),
        Column("reason", Text, nullable=False),
        Column("created", Double, nullable=False),
        Column("duration_s", Double, nullable=False),
        Column("expires", Double, nullable=True),
        Column("decided_by", String(200), nullable=True),
        Column("decided_at", Double, nullable=True),
        Column("params", Text, nullable=False),
    )
    return metadata


class ActionStore:
    """The actions in the table ``gateway_actions`` of the gateway's database; safe to share between threads."""

    def __init__(self, url: str) -> None:
        self._store: SqlStore = open_store(url, name="actions")
        self._metadata = _table()
        self._t = self._metadata.tables["gateway_actions"]
        self._store.create(self._metadata)
        self._version = 0

    @property
    def url(self) -> str:
        return self._store.url

    def close(self) -> None:
        self._store.close()

    @staticmethod
    def _action(row: Any) -> ResponseAction:
        return ResponseAction(
            id=int(row.id),
            incident_id=row.incident_id,
            actor=row.actor,
            clients=tuple(json.loads(row.clients)),
            kind=ActionKind(row.kind),
            status=row.status,
            rule=row.rule,
            reason=row.reason,
            created=float(row.created),
            expires=None if row.expires is None else float(row.expires),
            decided_by=row.decided_by,
            decided_at=None if row.decided_at is None else float(row.decided_at),
            params=json.loads(row.params),
        )

    def propose(
        self, incident: Incident, rule: Rule, *, now: float, rows: np.ndarray | None = None
    ) -> ResponseAction | None:
        """Create the action ``rule`` asks for on ``incident`` (pending when it needs approval, else active); None
        when the incident already has an action of that kind."""
        from sqlalchemy import insert, select

        t = self._t
        params: dict[str, Any] = {}
        if rule.action is ActionKind.THROTTLE:
            params["requests_per_second"] = rule.requests_per_second
        if rule.action is ActionKind.BLOCK_PATTERN:
            if rows is None or len(rows) == 0:
                return None
            params["radius"] = rule.radius
            params["rows"] = np.asarray(rows, dtype=np.float64)[:_MAX_PATTERN_ROWS].tolist()
        needs_person = rule.approval or rule.action is ActionKind.REVIEW
        status = "pending" if needs_person else "active"
        with self._store.begin() as conn:
            exists = conn.execute(
                select(t.c.id).where(t.c.incident_id == incident.id, t.c.kind == rule.action.value)
            ).first()
            if exists is not None:
                return None
            new_id = conn.execute(
                insert(t).values(
                    incident_id=incident.id,
                    actor=incident.actor,
                    clients=json.dumps(list(incident.clients)),
                    kind=rule.action.value,
                    status=status,
                    rule=rule.name,
                    reason=f"incident {incident.id}: {incident.technique}, risk {incident.risk:.0f}",
                    created=now,
                    duration_s=rule.duration_s,
                    expires=None if needs_person or rule.duration_s == 0 else now + rule.duration_s,
                    decided_by=None if needs_person else "policy",
                    decided_at=None if needs_person else now,
                    params=json.dumps(params),
                )
            ).inserted_primary_key[0]
            row = conn.execute(select(t).where(t.c.id == new_id)).one()
        return self._action(row)

    def decide(self, action_id: int, *, approve: bool, reviewer: str, now: float | None = None) -> ResponseAction:
        """Approve (make active from now) or deny a pending action; :class:`InvalidInputError` when it is not
        pending."""
        from sqlalchemy import select, update

        t = self._t
        now = time.time() if now is None else now
        with self._store.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == int(action_id))).first()
            if row is None:
                raise InvalidInputError(f"There is no action {action_id}.", remedy="List them with review list.")
            if row.status != "pending":
                raise InvalidInputError(
                    f"Action {action_id} is {row.status}, not pending: only pending actions can be decided.",
                    remedy="List the pending ones with review list.",
                )
            active = approve and row.kind != ActionKind.REVIEW.value
            status = "active" if active else ("approved" if approve else "denied")
            expires = now + row.duration_s if active and row.duration_s > 0 else None
            done = conn.execute(
                update(t)
                .where(t.c.id == row.id, t.c.status == "pending")
                .values(status=status, decided_by=reviewer[:200], decided_at=now, expires=expires)
            )
            if done.rowcount != 1:
                raise InvalidInputError(f"Action {action_id} was decided by someone else meanwhile.")
            row = conn.execute(select(t).where(t.c.id == row.id)).one()
        return self._action(row)

    def lift(self, action_id: int, *, reviewer: str, now: float | None = None) -> ResponseAction:
        """End an active action now."""
        from sqlalchemy import select, update

        t = self._t
        now = time.time() if now is None else now
        with self._store.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.id == int(action_id), t.c.status == "active")
                .values(status="lifted", decided_by=reviewer[:200], decided_at=now)
            )
            if done.rowcount != 1:
                raise InvalidInputError(f"There is no active action {action_id}.", remedy="List them with review list.")
            row = conn.execute(select(t).where(t.c.id == int(action_id))).one()
        return self._action(row)

    def get(self, action_id: int) -> ResponseAction:
        from sqlalchemy import select

        t = self._t
        with self._store.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == int(action_id))).first()
        if row is None:
            raise InvalidInputError(f"There is no action {action_id}.", remedy="List them with review list.")
        return self._action(row)

    def actions(self, *, status: str | None = None, limit: int = 1000) -> list[ResponseAction]:
        """Actions, newest first (``status``: pending, active, approved, denied, lifted)."""
        from sqlalchemy import select

        t = self._t
        query = select(t).order_by(t.c.id.desc()).limit(max(1, min(limit, 100_000)))
        if status is not None:
            query = query.where(t.c.status == status)
        with self._store.begin() as conn:
            return [self._action(r) for r in conn.execute(query).all()]

    def active(self, now: float) -> list[ResponseAction]:
        """The actions in force at ``now``."""
        return [a for a in self.actions(status="active", limit=100_000) if a.active_at(now)]


@dataclass(frozen=True)
class Sanctions:
    """What holds for one client's requests now."""

    suspended: bool = False
    label_only: bool = False
    requests_per_second: float | None = None
    patterns: tuple[tuple[np.ndarray, float], ...] = ()  # (rows (m, d) in raw units, radius in scaled units)
    reasons: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return self.suspended or self.label_only or self.requests_per_second is not None or bool(self.patterns)


_NONE = Sanctions()


class ActionBoard:
    """Each worker's snapshot of the active actions, per client, refreshed at most every ``refresh_s``.

    If the database cannot be read, the last snapshot stays in force (an action is never dropped because the
    database is down) and the reload is retried at the next refresh.
    """

    def __init__(self, store: ActionStore, *, refresh_s: float = 0.25, clock: Any = time.time) -> None:
        if not (0 < refresh_s <= 1.0):
            raise InvalidParameterError("refresh_s must be in (0, 1] so that actions take effect within a second.")
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._by_client: dict[str, Sanctions] = {}
        self._loaded = -math.inf
        self.refresh()

    def refresh(self) -> None:
        """Reload now (after this process created or decided an action)."""
        with self._lock:
            self._reload()

    def _reload(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        now_mono = time.monotonic()
        try:
            actions = self.store.active(self.clock())
        except SQLAlchemyError as exc:
            log.error("Could not read the active actions (%s); the last ones stay in force.", type(exc).__name__)
            self._loaded = now_mono
            return
        merged: dict[str, dict[str, Any]] = {}
        for action in actions:
            for client in action.clients or (action.actor,):
                entry = merged.setdefault(client, {"patterns": [], "reasons": []})
                entry["reasons"].append(f"{action.kind.value} (action {action.id})")
                if action.kind is ActionKind.SUSPEND:
                    entry["suspended"] = True
                elif action.kind is ActionKind.LABEL_ONLY:
                    entry["label_only"] = True
                elif action.kind is ActionKind.THROTTLE:
                    rate = float(action.params.get("requests_per_second", 1.0))
                    entry["requests_per_second"] = min(entry.get("requests_per_second", rate), rate)
                elif action.kind is ActionKind.BLOCK_PATTERN:
                    rows = np.asarray(action.params.get("rows", []), dtype=np.float64)
                    if rows.ndim == 2 and len(rows):
                        entry["patterns"].append((rows, float(action.params.get("radius", 0.5))))
        self._by_client = {
            client: Sanctions(
                suspended=bool(e.get("suspended")),
                label_only=bool(e.get("label_only")),
                requests_per_second=e.get("requests_per_second"),
                patterns=tuple(e["patterns"]),
                reasons=tuple(e["reasons"]),
            )
            for client, e in merged.items()
        }
        self._loaded = now_mono

    def for_client(self, client: str) -> Sanctions:
        """What holds for ``client`` now (reloading first when the snapshot is older than ``refresh_s``)."""
        if time.monotonic() - self._loaded > self.refresh_s and self._lock.acquire(blocking=False):
            try:
                self._reload()
            finally:
                self._lock.release()
        return self._by_client.get(client, _NONE)


def pattern_hits(x: np.ndarray, patterns: Sequence[tuple[np.ndarray, float]], scale: np.ndarray) -> np.ndarray:
    """Per row of ``x`` (n, d), whether it lies within a pattern's radius of one of its rows (distances in units of
    ``scale``, the reference data's per-feature spread)."""
    flat = x.reshape(len(x), -1).astype(np.float64) / scale
    hit = np.zeros(len(x), dtype=bool)
    for rows, radius in patterns:
        centres = rows.reshape(len(rows), -1) / scale
        if centres.shape[1] != flat.shape[1]:
            continue
        d2 = ((flat[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        hit |= (d2 <= radius * radius).any(axis=1)
    return hit
