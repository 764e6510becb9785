"""Alerts become incidents: deduplicated, grouped per actor and technique, ranked by risk, judged by analysts.

    >>> from modelshield.monitoring.alerts import AlertStore
    >>> store = AlertStore("sqlite:///gateway.db")  # doctest: +SKIP
    >>> outcome = store.add(alert)  # doctest: +SKIP
    >>> outcome.incident.risk, outcome.new_incident  # doctest: +SKIP
    >>> store.set_verdict(outcome.incident.id, "false-positive", analyst="ana", suppress_s=3600)  # doctest: +SKIP

Everything lives in the gateway's SQL database (SQLite or PostgreSQL), so every worker and replica shares one
picture. :meth:`AlertStore.add` takes a detector's :class:`~modelshield.monitoring.interface.Alert`:

- **Suppressed** when an analyst said that this detector's alerts about this actor are false positives (a
  suppression with an end): it is kept, marked, and goes no further.
- **Deduplicated**: the same actor, detector and technique within ``dedup_s`` of the last such alert adds to that
  alert's count (and keeps the highest score) instead of making a new one.
- **Grouped** into the actor's open incident for the technique (one incident per actor and technique; it closes after
  ``incident_idle_s`` without alerts, and a later alert opens a new one).
- **Ranked**: an incident's risk (0..100) is a noisy-OR over the distinct detectors in it, each weighing its
  severity (low 0.25, medium 0.5, high 0.75, critical 0.9) by how often analysts confirmed that detector before:
  ``(confirmed + 2) / (judged + 3)``, two thirds before any verdict (a detector is trusted until analysts say
  otherwise: one high-severity alert alone scores 50). Detectors that analysts keep marking false
  positive sink in the ranking; those they confirm rise.

:class:`JsonLinesSink` and :class:`WebhookSink` (JSON, HMAC-SHA256 signed, retried with backoff on a thread of its
own) receive each new or grown incident's alert; the gateway adds its audit log as a third sink.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import logging
import math
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelshield._internal.sql import SqlStore, open_store
from modelshield.errors import InvalidInputError, InvalidParameterError
from modelshield.findings import JSONValue, Severity
from modelshield.monitoring.interface import Alert, technique_name

__all__ = [
    "AddOutcome",
    "AlertSink",
    "AlertStore",
    "Incident",
    "JsonLinesSink",
    "StoredAlert",
    "Verdict",
    "WebhookSink",
    "risk_label",
    "sign_webhook",
]

log = logging.getLogger(__name__)

_SEVERITY_WEIGHT = {
    Severity.INFO: 0.0,
    Severity.LOW: 0.25,
    Severity.MEDIUM: 0.5,
    Severity.HIGH: 0.75,
    Severity.CRITICAL: 0.9,
}
_PRIOR = 2.0 / 3.0  # a detector's confirmed share before any verdict: Beta(2, 1)
_MAX_TEXT = 2000
_MAX_EVIDENCE = 16_000


class Verdict(enum.StrEnum):
    """An analyst's judgement of an incident."""

    TRUE_POSITIVE = "true-positive"
    FALSE_POSITIVE = "false-positive"


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored: its id, how many duplicates it absorbed, its incident and whether it was suppressed."""

    id: int
    alert: Alert
    count: int
    last_time: float
    incident_id: int | None
    suppressed: bool

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            **self.alert.to_dict(),
            "count": self.count,
            "last_time": self.last_time,
            "incident": self.incident_id,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class Incident:
    """Alerts about one actor and one technique, with a risk score and, once judged, an analyst's verdict."""

    id: int
    actor: str
    clients: tuple[str, ...]
    technique: str
    opened: float
    updated: float
    status: str  # open or closed
    risk: float
    severity: Severity
    alerts: int
    detectors: tuple[str, ...]
    verdict: Verdict | None
    analyst: str | None
    note: str

    def to_dict(self) -> dict[str, JSONValue]:
        return {
            "id": self.id,
            "actor": self.actor,
            "clients": list(self.clients),
            "technique": self.technique,
            "technique_name": technique_name(self.technique),
            "opened": self.opened,
            "updated": self.updated,
            "status": self.status,
            "risk": round(self.risk, 1),
            "severity": self.severity.value,
            "alerts": self.alerts,
            "detectors": list(self.detectors),
            "verdict": None if self.verdict is None else self.verdict.value,
            "analyst": self.analyst,
            "note": self.note,
        }


@dataclass(frozen=True)
class AddOutcome:
    """What :meth:`AlertStore.add` did: the stored alert, its incident (None when suppressed) and what was new."""

    stored: StoredAlert
    incident: Incident | None
    new_alert: bool
    new_incident: bool


def _tables() -> Any:
    from sqlalchemy import Boolean, Column, Double, Integer, MetaData, String, Table, Text

    metadata = MetaData()
    Table(
        "monitor_alerts",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("time", Double, nullable=False, index=True),
        Column("last_time", Double, nullable=False),
        Column("actor", String(200), nullable=False, index=True),
        Column("clients", Text, nullable=False),
        Column("detector", String(100), nullable=False),
        Column("technique", String(20), nullable=False),
        Column("severity", String(10), nullable=False),
        Column("score", Double, nullable=False),
        Column("threshold", Double, nullable=False),
        Column("summary", Text, nullable=False),
        Column("evidence", Text, nullable=False),
        Column("model_version", String(100), nullable=False),
        Column("count", Integer, nullable=False),
        Column("incident_id", Integer, nullable=True, index=True),
        Column("suppressed", Boolean, nullable=False),
    )
    Table(
        "monitor_incidents",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("actor", String(200), nullable=False, index=True),
        Column("clients", Text, nullable=False),
        Column("technique", String(20), nullable=False),
        Column("opened", Double, nullable=False),
        Column("updated", Double, nullable=False, index=True),
        Column("status", String(10), nullable=False),
        Column("risk", Double, nullable=False),
        Column("severity", String(10), nullable=False),
        Column("alerts", Integer, nullable=False),
        Column("detectors", Text, nullable=False),
        Column("verdict", String(20), nullable=True),
        Column("analyst", String(200), nullable=True),
        Column("note", Text, nullable=False),
    )
    Table(
        "monitor_suppressions",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("actor", String(200), nullable=False),
        Column("detector", String(100), nullable=False),
        Column("until", Double, nullable=False),
        Column("created", Double, nullable=False),
        Column("analyst", String(200), nullable=False),
        Column("reason", Text, nullable=False),
    )
    return metadata


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text.replace("\0", "")[:limit]


class AlertStore:
    """Alerts, incidents, verdicts and suppressions in the SQL database at ``url``; safe to share between threads.

    ``dedup_s``: duplicates of an alert within this time are counted on it. ``incident_idle_s``: an incident with no
    alert for this long is closed, and the actor's next alert for the technique opens a new one.
    """

    def __init__(self, url: str, *, dedup_s: float = 600.0, incident_idle_s: float = 86_400.0) -> None:
        if not (dedup_s >= 0 and incident_idle_s > 0):
            raise InvalidParameterError("dedup_s must be >= 0 and incident_idle_s positive.")
        self.dedup_s = float(dedup_s)
        self.incident_idle_s = float(incident_idle_s)
        self._store: SqlStore = open_store(url, name="alerts")
        self._metadata = _tables()
        self._alerts = self._metadata.tables["monitor_alerts"]
        self._incidents = self._metadata.tables["monitor_incidents"]
        self._suppressions = self._metadata.tables["monitor_suppressions"]
        self._store.create(self._metadata)
        self._lock = threading.Lock()  # one writer per process; replicas serialize in the database

    @property
    def url(self) -> str:
        return self._store.url

    def close(self) -> None:
        self._store.close()

    # -- writing -------------------------------------------------------------------------------------------------
    def add(self, alert: Alert) -> AddOutcome:
        """Store ``alert``: suppressed, absorbed by a duplicate, or new; grouped into its incident, risk updated."""
        from sqlalchemy import insert, select, update

        a, i, s = self._alerts, self._incidents, self._suppressions
        evidence = json.dumps(dict(alert.evidence), separators=(",", ":"))
        if len(evidence) > _MAX_EVIDENCE:
            evidence = json.dumps({"truncated": True, "summary": evidence[: _MAX_EVIDENCE // 2]})
        with self._lock, self._store.begin() as conn:
            suppressed = (
                conn.execute(
                    select(s.c.id).where(
                        s.c.until > alert.time,
                        s.c.detector.in_((alert.detector, "*")),
                        s.c.actor.in_((alert.client, "*")),
                    )
                ).first()
                is not None
            )
            previous = conn.execute(
                select(a)
                .where(
                    a.c.actor == alert.client,
                    a.c.detector == alert.detector,
                    a.c.technique == alert.technique,
                    a.c.suppressed == suppressed,
                    a.c.last_time >= alert.time - self.dedup_s,
                )
                .order_by(a.c.id.desc())
                .limit(1)
            ).first()
            if previous is not None:
                conn.execute(
                    update(a)
                    .where(a.c.id == previous.id)
                    .values(
                        count=previous.count + 1,
                        last_time=max(previous.last_time, alert.time),
                        score=max(previous.score, alert.score),
                    )
                )
                alert_id, incident_id, count, new_alert = previous.id, previous.incident_id, previous.count + 1, False
            else:
                incident_id = None if suppressed else self._incident_for(conn, alert)
                alert_id = conn.execute(
                    insert(a).values(
                        time=alert.time,
                        last_time=alert.time,
                        actor=_clip(alert.client, 200),
                        clients=json.dumps(list(alert.clients)[:1000]),
                        detector=_clip(alert.detector, 100),
                        technique=_clip(alert.technique, 20),
                        severity=alert.severity.value,
                        score=alert.score,
                        threshold=alert.threshold,
                        summary=_clip(alert.summary),
                        evidence=evidence,
                        model_version=_clip(alert.model_version, 100),
                        count=1,
                        incident_id=incident_id,
                        suppressed=suppressed,
                    )
                ).inserted_primary_key[0]
                count, new_alert = 1, True
            incident = None
            new_incident = False
            if incident_id is not None:
                row = conn.execute(select(i).where(i.c.id == incident_id)).one()
                new_incident = new_alert and row.alerts == 0
                incident = self._refresh_incident(conn, row, alert, new_alert)
        stored = StoredAlert(int(alert_id), alert, int(count), alert.time, incident_id, suppressed)
        return AddOutcome(stored, incident, new_alert, new_incident)

    def _incident_for(self, conn: Any, alert: Alert) -> int:
        from sqlalchemy import insert, select, update

        i = self._incidents
        row = conn.execute(
            select(i.c.id, i.c.updated)
            .where(i.c.actor == alert.client, i.c.technique == alert.technique, i.c.status == "open")
            .order_by(i.c.id.desc())
            .limit(1)
        ).first()
        if row is not None and row.updated >= alert.time - self.incident_idle_s:
            return int(row.id)
        if row is not None:
            conn.execute(update(i).where(i.c.id == row.id).values(status="closed"))
        return int(
            conn.execute(
                insert(i).values(
                    actor=_clip(alert.client, 200),
                    clients=json.dumps(list(alert.clients)[:1000]),
                    technique=alert.technique,
                    opened=alert.time,
                    updated=alert.time,
                    status="open",
                    risk=0.0,
                    severity=Severity.INFO.value,
                    alerts=0,
                    detectors="[]",
                    verdict=None,
                    analyst=None,
                    note="",
                )
            ).inserted_primary_key[0]
        )

    def _refresh_incident(self, conn: Any, row: Any, alert: Alert, new_alert: bool) -> Incident:
        from sqlalchemy import update

        i = self._incidents
        detectors = sorted(set(json.loads(row.detectors)) | {alert.detector})
        clients = sorted(set(json.loads(row.clients)) | set(alert.clients))[:1000]
        severity = max(Severity(row.severity), alert.severity, key=lambda s: s.rank)
        severities = self._detector_severities(conn, int(row.id))
        severities[alert.detector] = max(severities.get(alert.detector, alert.severity), alert.severity, key=_rank)
        risk = self._risk(conn, severities)
        values = {
            "updated": max(float(row.updated), alert.time),
            "alerts": int(row.alerts) + (1 if new_alert else 0),
            "detectors": json.dumps(detectors),
            "clients": json.dumps(clients),
            "severity": severity.value,
            "risk": risk,
        }
        conn.execute(update(i).where(i.c.id == row.id).values(**values))
        return self._incident({**row._mapping, **values})

    def _detector_severities(self, conn: Any, incident_id: int) -> dict[str, Severity]:
        from sqlalchemy import select

        a = self._alerts
        out: dict[str, Severity] = {}
        for detector, severity in conn.execute(
            select(a.c.detector, a.c.severity).where(a.c.incident_id == incident_id)
        ).all():
            out[detector] = max(out.get(detector, Severity.INFO), Severity(severity), key=_rank)
        return out

    def _precision(self, conn: Any) -> dict[str, float]:
        """Per detector, the share of its judged incidents that analysts confirmed, with a Beta(2, 1) prior."""
        from sqlalchemy import distinct, func, select

        a, i = self._alerts, self._incidents
        rows = conn.execute(
            select(a.c.detector, i.c.verdict, func.count(distinct(i.c.id)))
            .join(i, a.c.incident_id == i.c.id)
            .where(i.c.verdict.is_not(None))
            .group_by(a.c.detector, i.c.verdict)
        ).all()
        counts: dict[str, list[int]] = {}
        for detector, verdict, n in rows:
            tp_fp = counts.setdefault(detector, [0, 0])
            tp_fp[0 if verdict == Verdict.TRUE_POSITIVE.value else 1] += int(n)
        return {d: (tp + 2) / (tp + fp + 3) for d, (tp, fp) in counts.items()}

    def _risk(self, conn: Any, severities: Mapping[str, Severity]) -> float:
        precision = self._precision(conn)
        miss = 1.0
        for detector, severity in severities.items():
            miss *= 1.0 - _SEVERITY_WEIGHT[severity] * precision.get(detector, _PRIOR)
        return round(100.0 * (1.0 - miss), 3)

    def set_verdict(
        self,
        incident_id: int,
        verdict: Verdict | str,
        *,
        analyst: str,
        note: str = "",
        suppress_s: float | None = None,
        now: float | None = None,
    ) -> Incident:
        """Record an analyst's verdict on an incident (and close it). With ``suppress_s``, a false positive also
        suppresses its detectors' alerts about its actor for that long. Every open incident's risk is re-ranked."""
        from sqlalchemy import insert, select, update

        verdict = Verdict(verdict)
        now = time.time() if now is None else now
        if suppress_s is not None and not (0 < suppress_s <= 366 * 86_400):
            raise InvalidParameterError("suppress_s must be positive and at most a year.")
        i = self._incidents
        with self._lock, self._store.begin() as conn:
            row = conn.execute(select(i).where(i.c.id == int(incident_id))).first()
            if row is None:
                raise InvalidInputError(f"There is no incident {incident_id}.", remedy="List them with alerts.")
            conn.execute(
                update(i)
                .where(i.c.id == row.id)
                .values(verdict=verdict.value, analyst=_clip(analyst, 200), note=_clip(note), status="closed")
            )
            if suppress_s is not None and verdict is Verdict.FALSE_POSITIVE:
                for detector in json.loads(row.detectors):
                    conn.execute(
                        insert(self._suppressions).values(
                            actor=row.actor,
                            detector=detector,
                            until=now + suppress_s,
                            created=now,
                            analyst=_clip(analyst, 200),
                            reason=_clip(note) or f"false positive, incident {row.id}",
                        )
                    )
            for open_row in conn.execute(select(i).where(i.c.status == "open")).all():
                severities = self._detector_severities(conn, int(open_row.id))
                conn.execute(update(i).where(i.c.id == open_row.id).values(risk=self._risk(conn, severities)))
            updated = conn.execute(select(i).where(i.c.id == row.id)).one()
        return self._incident(updated)

    # -- reading -------------------------------------------------------------------------------------------------
    @staticmethod
    def _incident(row: Any) -> Incident:
        m = row if isinstance(row, Mapping) else row._mapping
        return Incident(
            id=int(m["id"]),
            actor=m["actor"],
            clients=tuple(json.loads(m["clients"])),
            technique=m["technique"],
            opened=float(m["opened"]),
            updated=float(m["updated"]),
            status=m["status"],
            risk=float(m["risk"]),
            severity=Severity(m["severity"]),
            alerts=int(m["alerts"]),
            detectors=tuple(json.loads(m["detectors"])),
            verdict=None if m["verdict"] is None else Verdict(m["verdict"]),
            analyst=m["analyst"],
            note=m["note"],
        )

    def incidents(self, *, status: str | None = None, limit: int = 100) -> list[Incident]:
        """Incidents, highest risk first (then the most recent)."""
        from sqlalchemy import select

        i = self._incidents
        query = select(i).order_by(i.c.risk.desc(), i.c.updated.desc()).limit(max(1, min(limit, 10_000)))
        if status is not None:
            query = query.where(i.c.status == status)
        with self._store.begin() as conn:
            return [self._incident(r) for r in conn.execute(query).all()]

    def incident(self, incident_id: int) -> tuple[Incident, list[StoredAlert]]:
        """One incident with its alerts; :class:`InvalidInputError` when there is none."""
        from sqlalchemy import select

        i, a = self._incidents, self._alerts
        with self._store.begin() as conn:
            row = conn.execute(select(i).where(i.c.id == int(incident_id))).first()
            if row is None:
                raise InvalidInputError(f"There is no incident {incident_id}.", remedy="List them with alerts.")
            alerts = conn.execute(select(a).where(a.c.incident_id == row.id).order_by(a.c.id)).all()
        return self._incident(row), [self._stored(r) for r in alerts]

    def alerts(self, *, since: float | None = None, limit: int = 1000, actor: str | None = None) -> list[StoredAlert]:
        """Stored alerts in the order they were raised (after ``since``, at most ``limit``)."""
        from sqlalchemy import select

        a = self._alerts
        query = select(a).order_by(a.c.id).limit(max(1, min(limit, 100_000)))
        if since is not None:
            query = query.where(a.c.time > since)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        with self._store.begin() as conn:
            return [self._stored(r) for r in conn.execute(query).all()]

    @staticmethod
    def _stored(row: Any) -> StoredAlert:
        alert = Alert(
            time=float(row.time),
            client=row.actor,
            clients=tuple(json.loads(row.clients)),
            detector=row.detector,
            technique=row.technique,
            severity=Severity(row.severity),
            score=float(row.score),
            threshold=float(row.threshold),
            summary=row.summary,
            evidence=json.loads(row.evidence),
            model_version=row.model_version,
        )
        return StoredAlert(
            int(row.id), alert, int(row.count), float(row.last_time), row.incident_id, bool(row.suppressed)
        )


def _rank(severity: Severity) -> int:
    return severity.rank


# -- sinks ---------------------------------------------------------------------------------------------------------


class AlertSink(Protocol):
    """Receives each alert that opened or grew an incident (never blocks the caller for long)."""

    def emit(self, alert: StoredAlert, incident: Incident | None) -> None: ...

    def close(self) -> None: ...


def _event(alert: StoredAlert, incident: Incident | None) -> dict[str, JSONValue]:
    return {"alert": alert.to_dict(), "incident": None if incident is None else incident.to_dict()}


class JsonLinesSink:
    """Appends one JSON object per alert to a file (``{"alert": ..., "incident": ...}``), flushed each time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, alert: StoredAlert, incident: Incident | None) -> None:
        line = json.dumps(_event(alert, incident), separators=(",", ":"), sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Modelshield-Signature`` header value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>``.

    A receiver recomputes it with the shared secret, compares with :func:`hmac.compare_digest`, and refuses
    timestamps more than a few minutes old (replays).
    """
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookSink:
    """POSTs each alert as JSON to ``url``, signed with ``secret`` (:func:`sign_webhook`), from a thread of its own.

    Failures (connection errors, timeouts, 5xx and 429) are retried up to ``attempts`` times with exponential
    backoff from ``backoff_s`` (doubling, with the same signature time refreshed on each try); other 4xx answers
    are not retried. At most ``max_queue`` events wait: beyond that the oldest is dropped and logged (the audit log
    keeps every alert regardless). The secret is never logged.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 5.0,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidParameterError(
                f"The webhook URL must start with http:// or https://, not {url[:40]!r}.",
                remedy="Set [alerts] webhook to the receiver's http(s) URL.",
            )
        if len(secret) < 16:
            raise InvalidParameterError(
                "The webhook secret must hold at least 16 bytes.", remedy="Write 32 random bytes to the secret file."
            )
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelshield-webhook", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WebhookSink({self.url!r})"  # never the secret

    def emit(self, alert: StoredAlert, incident: Incident | None) -> None:
        body = json.dumps(_event(alert, incident), separators=(",", ":"), sort_keys=True).encode()
        while True:
            try:
                self._queue.put_nowait(body)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    log.warning("The webhook queue is full: the oldest alert was dropped (the audit log has it).")
                except queue.Empty:
                    pass

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            self._deliver(body)

    def _deliver(self, body: bytes) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "modelshield-webhook",
                    "X-Modelshield-Signature": sign_webhook(self._secret, int(time.time()), body),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    response.read(1024)
                self.delivered += 1
                return
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code < 500 and exc.code != 429:
                    log.error("The webhook refused an alert with HTTP %d; not retried.", exc.code)
                    self.failed += 1
                    return
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = type(exc).__name__
            if attempt == self.attempts or self._stop.wait(delay):
                log.error("The webhook did not take an alert after %d attempts (%s).", attempt, reason)
                self.failed += 1
                return
            delay = min(delay * 2, 60.0)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (for up to ``timeout_s``), then stop."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._stop.set()


def risk_label(risk: float) -> str:
    """A word for a risk score: low (< 25), medium (< 50), high (< 75), critical."""
    if not math.isfinite(risk) or risk < 25:
        return "low"
    return "medium" if risk < 50 else "high" if risk < 75 else "critical"
