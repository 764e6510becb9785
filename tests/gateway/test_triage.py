"""Alerts to incidents (dedup, grouping, risk that learns from verdicts, suppression), sinks, and the response store."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from modelshield.errors import FileFormatError, InvalidInputError
from modelshield.findings import Severity
from modelshield.gateway.response import ActionBoard, ActionKind, ActionStore, ResponsePolicy, pattern_hits
from modelshield.monitoring.alerts import AlertStore, JsonLinesSink, Verdict, WebhookSink, sign_webhook
from modelshield.monitoring.interface import Alert, Technique


def _alert(client: str = "mallory", detector: str = "extraction", t: float = 1000.0, **kw: object) -> Alert:
    values: dict[str, object] = {
        "time": t,
        "client": client,
        "detector": detector,
        "technique": Technique.EXTRACTION,
        "severity": Severity.HIGH,
        "score": 12.0,
        "threshold": 9.2,
        "summary": "Queries far from the owner's data.",
        "evidence": {"queries": 40},
    }
    values.update(kw)
    return Alert(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gw.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def test_duplicates_are_counted_and_incidents_group_per_actor_and_technique(db: str) -> None:
    store = AlertStore(db, dedup_s=60, incident_idle_s=3600)
    first = store.add(_alert(t=1000))
    again = store.add(_alert(t=1030, score=20.0))
    assert first.new_alert and first.new_incident
    assert not again.new_alert and again.stored.id == first.stored.id and again.stored.count == 2
    later = store.add(_alert(t=1200))  # past dedup_s: a new alert, same incident
    assert later.new_alert and not later.new_incident and later.incident is not None
    assert first.incident is not None and later.incident.id == first.incident.id
    other = store.add(_alert(detector="probing", technique=Technique.MEMBERSHIP, t=1201))
    assert other.incident is not None and other.incident.id != first.incident.id
    elsewhere = store.add(_alert(client="eve", t=1202))
    assert elsewhere.incident is not None and elsewhere.incident.id not in (first.incident.id, other.incident.id)
    stale = store.add(_alert(t=1200 + 3601))  # the incident went quiet for longer than incident_idle_s
    assert stale.incident is not None and stale.new_incident and stale.incident.id != first.incident.id
    stored = store.alerts(actor="mallory")
    assert [a.count for a in stored][:1] == [2] and max(a.alert.score for a in stored) == 20.0
    incident, alerts = store.incident(first.incident.id)
    assert incident.alerts == 2 and len(alerts) == 2 and incident.status == "closed"
    store.close()


def test_risk_rises_with_more_detectors_and_learns_from_verdicts(db: str) -> None:
    store = AlertStore(db)
    one = store.add(_alert(client="a", detector="ood", t=10)).incident
    both = store.add(_alert(client="a", detector="prada", t=11)).incident
    assert one is not None and both is not None and both.risk > one.risk  # noisy-OR over detectors
    assert one.risk == pytest.approx(100 * 0.75 * 2 / 3)
    # Analysts keep marking the "ood" detector's incidents false positives: its later incidents rank lower.
    for i in range(4):
        inc = store.add(_alert(client=f"benign-{i}", detector="ood", t=20 + i)).incident
        assert inc is not None
        store.set_verdict(inc.id, Verdict.FALSE_POSITIVE, analyst="ana", now=30)
    fresh = store.add(_alert(client="b", detector="ood", t=40)).incident
    assert fresh is not None and fresh.risk < one.risk
    confirmed = store.add(_alert(client="c", detector="sybil", t=41)).incident
    assert confirmed is not None
    store.set_verdict(confirmed.id, "true-positive", analyst="ana", now=42)
    rising = store.add(_alert(client="d", detector="sybil", t=43)).incident
    assert rising is not None and rising.risk > one.risk
    ranked = store.incidents(status="open")
    assert [i.risk for i in ranked] == sorted((i.risk for i in ranked), reverse=True)
    with pytest.raises(InvalidInputError, match="no incident"):
        store.set_verdict(10_000, Verdict.TRUE_POSITIVE, analyst="ana")
    store.close()


def test_a_false_positive_verdict_can_suppress_the_detector_for_that_client(db: str) -> None:
    store = AlertStore(db)
    incident = store.add(_alert(client="loadtest", t=100)).incident
    assert incident is not None
    store.set_verdict(incident.id, Verdict.FALSE_POSITIVE, analyst="ana", suppress_s=3600, now=100)
    muted = store.add(_alert(client="loadtest", t=200))
    assert muted.stored.suppressed and muted.incident is None
    assert store.add(_alert(client="someone-else", t=200)).incident is not None  # only that client
    back = store.add(_alert(client="loadtest", t=100 + 3601))  # the suppression ended
    assert not back.stored.suppressed and back.incident is not None
    store.close()


def test_json_lines_sink_writes_one_object_per_alert(tmp_path: Path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'gw.db'}")
    sink = JsonLinesSink(tmp_path / "alerts.jsonl")
    for t in (1.0, 2.0):
        outcome = store.add(_alert(client=f"c{t}", t=t, summary='odd "quotes"\nand a newline'))
        sink.emit(outcome.stored, outcome.incident)
    sink.close()
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2
    event = json.loads(lines[0])
    assert event["alert"]["client"] == "c1.0" and event["incident"]["technique"] == Technique.EXTRACTION
    store.close()


class _Receiver(http.server.BaseHTTPRequestHandler):
    secret = b"s" * 32
    bodies: ClassVar[list[bytes]] = []
    failures_left = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        parts = dict(p.split("=", 1) for p in self.headers["X-Modelshield-Signature"].split(","))
        expected = hmac.new(self.secret, f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            self.send_response(401)
        elif type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
        else:
            type(self).bodies.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_is_signed_and_retried_with_backoff(tmp_path: Path) -> None:
    _Receiver.bodies = []
    _Receiver.failures_left = 2  # two 503s, then it takes the alert
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = AlertStore(f"sqlite:///{tmp_path / 'gw.db'}")
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", _Receiver.secret, backoff_s=0.05)
        assert "sss" not in repr(sink)
        outcome = store.add(_alert())
        sink.emit(outcome.stored, outcome.incident)
        sink.close(timeout_s=10)
        assert len(_Receiver.bodies) == 1 and sink.delivered == 1
        assert json.loads(_Receiver.bodies[0])["alert"]["detector"] == "extraction"
        wrong = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", b"w" * 32, backoff_s=0.01)
        wrong.emit(outcome.stored, outcome.incident)  # a bad signature is refused (401) and not retried
        wrong.close(timeout_s=10)
        assert wrong.failed == 1 and len(_Receiver.bodies) == 1
        store.close()
    finally:
        server.shutdown()
        server.server_close()
    assert sign_webhook(b"k" * 16, 5, b"{}").startswith("t=5,v1=")


def test_default_policy_and_policy_file_errors(tmp_path: Path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'gw.db'}")
    high = store.add(_alert(client="thief", t=1)).incident
    medium = store.add(_alert(client="odd", detector="behaviour", technique=Technique.API_ACCESS,
                              severity=Severity.MEDIUM, t=2)).incident  # fmt: skip
    assert high is not None and medium is not None
    policy = ResponsePolicy.default()
    rule = policy.actions_for(high)  # one detector alone: labels only
    assert rule is not None and rule.action is ActionKind.LABEL_ONLY and not rule.approval
    corroborated = store.add(_alert(client="thief", detector="prada", t=2)).incident  # a second detector agrees
    assert corroborated is not None and corroborated.id == high.id and corroborated.risk >= 70
    rule = policy.actions_for(corroborated)
    assert rule is not None and rule.action is ActionKind.SUSPEND and not rule.approval
    probing = store.add(_alert(client="prober", detector="evasion", technique=Technique.EVASION, t=3)).incident
    assert probing is not None
    rule = policy.actions_for(probing)  # a boundary walk alone is enough
    assert rule is not None and rule.action is ActionKind.SUSPEND
    rule = policy.actions_for(medium)
    assert rule is not None and rule.action is ActionKind.REVIEW
    bad = tmp_path / "policy.toml"
    bad.write_text('[[rule]]\nname = "x"\naction = "explode"\n')
    with pytest.raises(FileFormatError, match=r"rule\.0\.action"):
        ResponsePolicy.load(bad)
    good = tmp_path / "good.toml"
    good.write_text('[[rule]]\nname = "slow down"\naction = "throttle"\nrequests_per_second = 2\n')
    assert ResponsePolicy.load(good).rules[0].requests_per_second == 2
    store.close()


def test_actions_reach_every_board_within_its_refresh(db: str) -> None:
    alerts = AlertStore(db)
    alerts.add(_alert(client="thief", clients=("thief", "thief-2"), t=time.time()))
    incident = alerts.add(_alert(client="thief", detector="ood", clients=("thief", "thief-2"), t=time.time())).incident
    assert incident is not None
    store = ActionStore(db)
    elsewhere = ActionBoard(ActionStore(db), refresh_s=0.2)  # another worker's view
    assert not elsewhere.for_client("thief").any
    policy = ResponsePolicy.default()
    rule = policy.actions_for(incident)
    assert rule is not None
    action = store.propose(incident, rule, now=time.time())
    assert action is not None and action.status == "active" and action.decided_by == "policy"
    assert store.propose(incident, rule, now=time.time()) is None  # once per incident and kind
    deadline = time.monotonic() + 1.0
    while not elsewhere.for_client("thief-2").suspended and time.monotonic() < deadline:
        time.sleep(0.02)
    assert elsewhere.for_client("thief-2").suspended  # every client of the group, within a second
    store.lift(action.id, reviewer="ana")
    elsewhere.refresh()
    assert not elsewhere.for_client("thief").any
    alerts.close()
    store.close()
    elsewhere.store.close()


def test_review_queue_approve_deny_and_block_patterns(db: str) -> None:
    alerts = AlertStore(db)
    store = ActionStore(db)
    board = ActionBoard(store, refresh_s=0.25)
    policy = ResponsePolicy.model_validate(
        {"rule": [{"name": "block", "action": "block-pattern", "approval": True, "radius": 0.5}]}
    )
    incident = alerts.add(_alert(client="prober", detector="probing", technique=Technique.MEMBERSHIP, t=5)).incident
    assert incident is not None
    rule = policy.actions_for(incident)
    assert rule is not None
    centre = np.array([[1.0, 2.0, 3.0]])
    action = store.propose(incident, rule, now=time.time(), rows=centre)
    assert action is not None and action.status == "pending"
    board.refresh()
    assert not board.for_client("prober").any  # waits for a person
    approved = store.decide(action.id, approve=True, reviewer="ana")
    assert approved.status == "active" and approved.decided_by == "ana" and approved.expires is not None
    with pytest.raises(InvalidInputError, match="not pending"):
        store.decide(action.id, approve=False, reviewer="bob")
    board.refresh()
    sanctions = board.for_client("prober")
    x = np.array([[1.0, 2.0, 3.1], [5.0, 5.0, 5.0]])
    assert pattern_hits(x, sanctions.patterns, np.ones(3)).tolist() == [True, False]
    other = alerts.add(_alert(client="maybe", detector="probing", technique=Technique.MEMBERSHIP, t=6)).incident
    assert other is not None
    pending = store.propose(other, rule, now=time.time(), rows=centre)
    assert pending is not None
    denied = store.decide(pending.id, approve=False, reviewer="ana")
    assert denied.status == "denied"
    board.refresh()
    assert not board.for_client("maybe").any
    assert [a.id for a in store.actions(status="active")] == [action.id]
    alerts.close()
    store.close()
