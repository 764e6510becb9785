"""The gateway's monitoring: detectors on every answered request, alerts to incidents, incidents to actions.

    >>> monitor = GatewayMonitor(config, clock=time.time, audit=gateway_audit)  # doctest: +SKIP
    >>> monitor.attach(deployment)            # fit the detectors on the model and its reference  # doctest: +SKIP
    >>> sanctions = monitor.sanctions("acme")  # before the model: suspended? throttled? label only?  # doctest: +SKIP
    >>> released = monitor.after(principal, x, p, deployment, key_id=..., source=...)  # doctest: +SKIP

Per answered request, on the request's thread: the output watermark marks a keyed fraction of answers (recorded in
its ledger), every detector observes the request (in-memory, vectorised), the drift window takes its rows. Alerts
go to a queue; one thread of the monitor stores them (deduplicated, grouped into incidents, ranked), writes them to
the sinks (the audit log, JSON lines, a signed webhook) and asks the response policy for actions, which the board
of every worker and replica picks up within ``[response] refresh_s``. Requests never wait for that thread, and a
monitor that fails never fails a request: the failure is logged and counted.

Learned baselines (behaviour analytics) are saved as JSON in the table ``monitor_state`` every
``[monitoring] state_interval_s`` and at shutdown, and restored at start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelshield._internal.sql import SqlStore, open_store
from modelshield.errors import InvalidParameterError, ModelShieldError
from modelshield.gateway.config import GatewayConfig
from modelshield.gateway.metrics import GatewayMetrics
from modelshield.gateway.response import ActionBoard, ActionStore, ResponseAction, ResponsePolicy, Sanctions
from modelshield.monitoring.alerts import AlertSink, AlertStore, Incident, JsonLinesSink, WebhookSink
from modelshield.monitoring.interface import Alert, Observation, Technique, TrafficDetector

if TYPE_CHECKING:
    from modelshield.gateway.serving import Deployment

__all__ = ["GatewayMonitor", "Released"]

log = logging.getLogger(__name__)

Audit = Callable[[str, str, tuple[str, ...], str, str], None]  # kind, client, reasons, decision, role
_QUEUE = 10_000
_FEEDBACK_KEEP = 100_000


@dataclass(frozen=True)
class Released:
    """What the client receives after the watermark: probabilities, and how many rows were marked."""

    probabilities: np.ndarray
    marked: int


def _detectors(config: GatewayConfig) -> list[TrafficDetector]:
    from modelshield.monitoring import detectors as d

    cap = config.monitoring.max_clients
    made: list[TrafficDetector] = []
    for name in config.monitoring.detectors:
        if name == "extraction":
            made.append(d.ExtractionDetector(max_clients=cap))
        elif name == "evasion":
            made.append(d.EvasionProbingDetector(max_clients=cap))
        elif name == "probing":
            made.append(d.ProbingDetector(max_clients=cap))
        elif name == "sybil":
            made.append(d.SybilDetector(max_clients=cap))
        elif name == "behaviour":
            from modelshield.monitoring.behaviour import BehaviourAnalytics

            made.append(BehaviourAnalytics(max_clients=cap))
    return made


class _StateStore:
    """Detectors' saved baselines (JSON) in the table ``monitor_state``."""

    def __init__(self, store: SqlStore) -> None:
        from sqlalchemy import Column, Double, MetaData, String, Table, Text

        self._store = store
        metadata = MetaData()
        self._t = Table(
            "monitor_state",
            metadata,
            Column("name", String(200), primary_key=True),
            Column("updated", Double, nullable=False),
            Column("state", Text, nullable=False),
        )
        store.create(metadata)

    def save(self, name: str, state: dict[str, Any]) -> None:
        from sqlalchemy import delete, insert

        text = json.dumps(state, separators=(",", ":"), allow_nan=False)
        with self._store.begin() as conn:
            conn.execute(delete(self._t).where(self._t.c.name == name))
            conn.execute(insert(self._t).values(name=name, updated=time.time(), state=text))

    def load(self, name: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        with self._store.begin() as conn:
            row = conn.execute(select(self._t.c.state).where(self._t.c.name == name)).first()
        return None if row is None else dict(json.loads(row.state))


class GatewayMonitor:
    """Detectors, drift, watermark, alert store, response policy and action board of one gateway process."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Callable[[], float],
        audit: Audit,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        settings = config.monitoring
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self._audit = audit
        url = config.database_url
        self.alerts = AlertStore(url, dedup_s=config.alerts.dedup_s, incident_idle_s=config.alerts.incident_idle_s)
        self.actions = ActionStore(url)
        self.board = ActionBoard(self.actions, refresh_s=config.response.refresh_s, clock=clock)
        self.policy = (
            ResponsePolicy.load(config.path(config.response.policy))
            if config.response.policy is not None
            else ResponsePolicy.default()
        )
        self._state = _StateStore(open_store(url, name="monitor-state"))
        self.sinks: list[AlertSink] = []
        if config.alerts.jsonl is not None:
            self.sinks.append(JsonLinesSink(config.path(config.alerts.jsonl)))
        if config.alerts.webhook is not None and config.alerts.webhook_secret is not None:
            secret = _read_secret(config.path(config.alerts.webhook_secret), "[alerts] webhook_secret")
            self.sinks.append(WebhookSink(config.alerts.webhook, secret))
        self.watermark: Any = None
        self.ledger: Any = None
        if settings.enabled and settings.watermark.rate > 0:
            from modelshield.monitoring.watermark import OutputWatermark, WatermarkKey, WatermarkLedger

            key = WatermarkKey.load(config.path(settings.watermark.key))
            self.watermark = OutputWatermark(key, rate=settings.watermark.rate)
            self.ledger = WatermarkLedger(url)
        self.detectors: list[TrafficDetector] = []
        self.drift: Any = None
        self._predictions: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._predictions_lock = threading.Lock()
        self.failures = 0
        self.alerts_raised = 0
        self.last_drift: Any = None
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=_QUEUE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelshield-monitor", daemon=True)
        self._saver = threading.Thread(target=self._save_loop, name="modelshield-monitor-state", daemon=True)
        self._thread.start()

    # -- model versions ------------------------------------------------------------------------------------------
    def attach(self, deployment: Deployment, *, seed: int = 0) -> None:
        """Fit fresh detectors (and the drift reference) on ``deployment``'s model and reference data; baselines
        learned so far carry over (from the detectors in service, else from the database)."""
        settings = self.config.monitoring
        if not settings.enabled:
            return
        model = deployment.model
        if model.reference is None:
            raise InvalidParameterError(
                "[monitoring] is enabled but there is no reference data to learn normal traffic from.",
                remedy="Set [model] reference to the owner's data, or [monitoring] enabled = false.",
            )
        reference = model.reference
        x_ref, y_ref = reference.x[:5000], reference.y[:5000]
        fresh = _detectors(self.config)
        for detector in fresh:
            detector.fit(model.classifier, x_ref, y_ref, seed=seed)
            detector.clock = self.clock
            previous = next((d for d in self.detectors if d.name == detector.name), None)
            saved = previous.state() if previous is not None else self._state.load(detector.name)
            if saved:
                try:
                    detector.restore(saved)
                except ModelShieldError as exc:
                    log.error("The saved state of %s was not restored: %s", detector.name, exc)
        if self.watermark is not None:
            self.watermark.fit(model.classifier)
        drift = None
        if settings.drift_window > 0:
            from modelshield.monitoring.drift import DriftMonitor, DriftReference

            rows = np.asarray(reference.x[:20_000])
            predictions = np.asarray(model.classifier.predict_proba(rows)).argmax(axis=1)
            flat = rows.reshape(len(rows), -1)
            names = [f.name for f in reference.schema.features] if reference.schema is not None else []
            drift_ref = DriftReference(alpha=settings.drift_alpha, ks_method="asymp").fit(
                flat, columns=names if len(names) == flat.shape[1] else None, predictions=predictions
            )
            drift = DriftMonitor(drift_ref, window=settings.drift_window, step=settings.drift_step)
        sample = np.asarray(reference.x[:20_000], dtype=np.float64)
        spread = sample.reshape(len(sample), -1).std(axis=0)
        self._scale = np.where(spread > 1e-12, spread, 1.0)
        self.detectors, self.drift = fresh, drift
        if not self._saver.is_alive():
            self._saver.start()

    # -- the request path ----------------------------------------------------------------------------------------
    def scale(self, shape: tuple[int, ...]) -> np.ndarray:
        """The reference data's per-feature spread (distances to blocked patterns are measured in it)."""
        width = int(np.prod(shape))
        scale = getattr(self, "_scale", None)
        return scale if scale is not None and len(scale) == width else np.ones(width)

    def sanctions(self, client: str) -> Sanctions:
        """The actions that hold for ``client`` now."""
        return self.board.for_client(client)

    def after(
        self,
        client: str,
        x: np.ndarray,
        p: np.ndarray,
        deployment: Deployment,
        *,
        key_id: str | None,
        source: str,
        request_id: str | None,
    ) -> Released:
        """Watermark the answer, let the detectors observe the request and queue their alerts; never raises."""
        released = Released(p, 0)
        now = self.clock()
        try:
            if self.watermark is not None:
                answer = self.watermark.apply(x, p)
                released = Released(np.asarray(answer.probabilities, dtype=np.float64), answer.n_marked)
                if answer.marked.any() or answer.control.any():
                    ledger = self.ledger
                    self._queue.put_nowait(lambda: ledger.record(client, now, x, answer))
            obs = Observation(
                time=now,
                client=client,
                x=x,
                probabilities=p,
                key_id=key_id or "",
                source=source,
                model_version=deployment.model.digest,
            )
            raised: list[Alert] = []
            for detector in self.detectors:
                raised.extend(detector.observe(obs))
            if self.drift is not None:  # the test itself (10-30 ms per window) runs on the monitor's thread
                drift, digest = self.drift, deployment.model.digest
                self._queue.put_nowait(lambda: self._drift(drift, obs, now, digest))
            if request_id and self.drift is not None:
                with self._predictions_lock:
                    self._predictions[(client, request_id[:200])] = obs.labels
                    while len(self._predictions) > _FEEDBACK_KEEP:
                        self._predictions.popitem(last=False)
            if raised:
                self.alerts_raised += len(raised)
                if self.metrics is not None:
                    for alert in raised:
                        self.metrics.alert(alert.detector, alert.technique)
                rows = obs.x[:4].copy()
                self._queue.put_nowait(lambda: self._handle_all(raised, rows))
        except queue.Full:
            self._failed()
            log.error("The monitor's alert queue is full; alerts of this request were dropped.")
        except Exception:  # a monitor must never fail a request
            self._failed()
            log.exception("The monitor failed on a request of %s; the request was answered regardless.", client)
        return released

    def _failed(self) -> None:
        self.failures += 1
        if self.metrics is not None:
            self.metrics.monitor_failures.inc()

    def prometheus(self) -> str:
        """The drift monitor's gauges of its latest window, in the Prometheus text format ("" before the first)."""
        result = self.last_drift
        return "" if result is None else str(result.prometheus())

    def rejected(self, client: str, status: int, *, enforced: bool = False) -> None:
        """A refused request of an authenticated client (for its rejection rate). ``enforced``: the refusal carries
        out a response action (suspended, throttled, a blocked pattern), so it counts as the client's volume but not
        as a sign of its own behaviour."""
        now = self.clock()
        for detector in self.detectors:
            observe_rejection = getattr(detector, "observe_rejection", None)
            if observe_rejection is not None:
                try:
                    raised = list(observe_rejection(client, now, status, enforced=enforced))
                    if raised:
                        self.submit(raised)
                except Exception:  # never fail the refusal
                    self._failed()
                    log.exception("The monitor failed to record a rejection.")

    def feedback(self, client: str, request_id: str, labels: Sequence[int]) -> bool:
        """The true labels of an earlier request of ``client`` (by its ``id``, one per row); False when the request
        is not remembered (too old, another client's, or already answered) or the number of labels differs."""
        with self._predictions_lock:
            predicted = self._predictions.get((client, request_id))
            if predicted is None or len(predicted) != len(labels) or self.drift is None:
                return False
            del self._predictions[(client, request_id)]
        self.drift.record_feedback(predicted, np.asarray(labels, dtype=np.int64))
        return True

    def _drift(self, drift: Any, obs: Observation, now: float, digest: str) -> None:
        result = drift.update(obs.flat, obs.labels)
        if result is None:
            return
        self.last_drift = result
        alerts = self._drift_alerts(result, now, digest)
        if alerts:
            if self.metrics is not None:
                self.metrics.alert("drift", Technique.DRIFT)
            self._handle_all(alerts, obs.x[:0])

    def _drift_alerts(self, result: Any, now: float, digest: str) -> list[Alert]:
        from modelshield.findings import Severity

        drifted = [c for c in result.columns if c.drifted]
        prediction = getattr(result, "prediction", None)
        prediction_drifted = bool(prediction is not None and prediction.drifted)
        if not drifted and not prediction_drifted:
            return []
        names = ", ".join(c.name for c in drifted[:5]) + ("..." if len(drifted) > 5 else "")
        summary = (
            f"{len(drifted)} feature(s) drifted from the reference ({names})"
            if drifted
            else "The model's answers drifted from its answers on the reference"
        )
        worst = min((c.q_value for c in drifted), default=1.0)
        return [
            Alert(
                time=now,
                client="model",
                detector="drift",
                technique=Technique.DRIFT,
                severity=Severity.MEDIUM if drifted else Severity.LOW,
                score=float(len(drifted)) + (1.0 if prediction_drifted else 0.0),
                threshold=0.0,
                summary=summary + ".",
                evidence={
                    "features": [c.name for c in drifted][:50],
                    "min_q_value": worst,
                    "prediction_drifted": prediction_drifted,
                },
                model_version=digest,
            )
        ]

    # -- the monitor's thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                self._failed()
                log.exception("The monitor's thread failed on a job (alerts or the watermark ledger).")
            self._queue.task_done()

    def submit(self, alerts: Sequence[Alert], rows: np.ndarray | None = None) -> None:
        """Hand alerts raised elsewhere (another tool, a test) to the monitor's thread, as if a detector raised them;
        ``rows`` are the inputs that raised them (for block-pattern actions)."""
        batch, held = list(alerts), np.zeros((0, 1)) if rows is None else np.asarray(rows)
        self._queue.put_nowait(lambda: self._handle_all(batch, held))

    def _handle_all(self, alerts: list[Alert], rows: np.ndarray) -> None:
        for alert in alerts:
            try:
                self._handle(alert, rows)
            except Exception:
                self._failed()
                log.exception("Could not process an alert of %s about %s.", alert.detector, alert.client)

    def _handle(self, alert: Alert, rows: np.ndarray) -> None:
        outcome = self.alerts.add(alert)
        if outcome.stored.suppressed or not outcome.new_alert:
            return
        incident = outcome.incident
        self._audit(
            "alert",
            alert.client,
            (f"{alert.detector}: {alert.summary}", f"technique {alert.technique}", f"score {alert.score:.3g}"),
            "flag",
            "system",
        )
        for sink in self.sinks:
            try:
                sink.emit(outcome.stored, incident)
            except Exception:
                log.exception("An alert sink failed.")
        if incident is not None and self.config.response.enabled:
            self._respond(incident, rows)

    def _respond(self, incident: Incident, rows: np.ndarray) -> None:
        rule = self.policy.actions_for(incident)
        if rule is None:
            return
        flat = rows.reshape(len(rows), int(np.prod(rows.shape[1:]))) if len(rows) else None
        action = self.actions.propose(incident, rule, now=self.clock(), rows=flat)
        if action is None:
            return
        self.record_action(action, "policy")
        if action.status == "active":
            self.board.refresh()

    def record_action(self, action: ResponseAction, by: str, *, why: str = "") -> None:
        """Write an action (proposed, approved, denied, lifted) to the audit log with who decided it (and why, when
        a reviewer said)."""
        verb = {"pending": "awaits review", "active": "in force", "denied": "denied", "lifted": "lifted"}.get(
            action.status, action.status
        )
        what = f"action {action.id}: {action.kind.value} {verb}"
        reasons = (what, f"rule {action.rule!r}", action.reason, f"by {by}")
        self._audit(
            "response",
            action.actor,
            (*reasons, f"reviewer's reason: {why}") if why else reasons,
            "block" if action.status == "active" else "flag",
            "system" if by == "policy" else "admin",
        )

    def decide(self, action_id: int, decision: str, reviewer: str, *, now: float, why: str = "") -> ResponseAction:
        """A reviewer's decision on an action, as the admin API and the console take it: ``approve`` or ``deny`` a
        pending action, ``lift`` an active one. The store decides (:class:`~modelshield.errors.InvalidInputError`
        when the action is not in a state for it), this worker's board reloads at once (the others within
        ``[response] refresh_s``), and the audit log records who decided and why."""
        if decision == "lift":
            action = self.actions.lift(action_id, reviewer=reviewer, now=now)
        elif decision in {"approve", "deny"}:
            action = self.actions.decide(action_id, approve=decision == "approve", reviewer=reviewer, now=now)
        else:
            raise InvalidParameterError(f"A decision is approve, deny or lift, not {decision!r}.")
        self.board.refresh()
        self.record_action(action, reviewer, why=why)
        return action

    def _save_loop(self) -> None:
        while not self._stop.wait(self.config.monitoring.state_interval_s):
            self.save_state()

    def save_state(self) -> None:
        for detector in self.detectors:
            try:
                state = detector.state()
                if state:
                    self._state.save(detector.name, state)
            except Exception:
                log.exception("Could not save the state of %s.", detector.name)

    def pending(self) -> int:
        """Alerts waiting for the monitor's thread."""
        return self._queue.qsize()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued alert has been processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=5)
        self._thread.join(10)
        self.save_state()
        for sink in self.sinks:
            sink.close()
        self.alerts.close()
        self.actions.close()
        if self.ledger is not None:
            self.ledger.close()


def _read_secret(path: Path, key: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(f"{key}: cannot read {path}: {exc.strerror}.") from None
    secret = data.strip()
    if len(secret) < 16:
        raise InvalidParameterError(f"{key}: {path} holds fewer than 16 bytes.", remedy="Write 32 random bytes to it.")
    return secret
