"""The security console: server-rendered pages under ``/console`` for analysts (who read) and admins (who act).

    >>> from modelshield.gateway.console import add_console
    >>> add_console(app, gateway)  # the gateway does this itself unless [console] enabled = false  # doctest: +SKIP

Pages: overview (traffic, rejections, latency, top clients, open incidents, the model served, the audit log's
integrity; the live part is polled every few seconds), incidents and their alerts (filters; an incident's timeline,
evidence and charts), the review queue (approve or deny pending actions with a reason, lift active ones), clients
(keys without secrets, budgets, behaviour against their own baseline; suspend and restore), drift, and the model
registry (promote and roll back, with a confirmation step). Charts are inline SVG from
:mod:`modelshield.reporting.svg`; the only script is a small file that polls the overview's live fragment.

**Sessions.** An analyst or admin logs in with an API key (a form POST; client keys are refused). The console then
sets a cookie holding a random session id (32 bytes from :mod:`secrets`): ``HttpOnly``, ``SameSite=Strict``,
``Path=/console``, and ``Secure`` when the request came over TLS. The table ``console_sessions`` of the gateway's
SQL database holds the SHA-256 digest of each session id (never the id itself, and never the key), so every worker
and replica shares the sessions. A session ends after ``[console] idle_minutes`` without a page view (the overview's
polling does not count), ``absolute_minutes`` after its login, at logout, and as soon as its key is revoked,
expires or changes role. Every form carries the session's CSRF token, checked with :func:`hmac.compare_digest` on
every POST (the login form uses a double-submit cookie); a POST without it is refused with 403. Every page but the
login redirects to it (303) without a session.

**Output.** Templates are Jinja2 with autoescape on, ``StrictUndefined`` and a ``finalize`` that strips control
characters: client names, summaries, evidence and feature names are untrusted and always escaped. Errors render a
plain page with a request id, never a stack trace. Pages are sent with a content security policy that allows only
the console's own stylesheet and script (and the chart legends' fixed colour swatches, by hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from modelshield._internal.sql import SqlStore, open_store
from modelshield.errors import ModelShieldError
from modelshield.findings import Chart, Severity
from modelshield.gateway.identity import AuthenticationError, KeyStoreError, Principal, Role
from modelshield.reporting.interface import printable
from modelshield.reporting.svg import PALETTE, render_chart

if TYPE_CHECKING:
    from modelshield.gateway.app import Gateway

__all__ = ["CONSOLE_CSP", "ConsoleSession", "ConsoleSessions", "add_console", "error_page"]

log = logging.getLogger(__name__)

COOKIE = "modelshield_console"
LOGIN_COOKIE = "modelshield_console_login"
PREFIX = "/console"
_MAX_FORM_BYTES = 16_384
_MAX_KEY_CHARS = 4096
_MAX_REASON = 1000
_TRAFFIC_ROWS = 10_000
_TOUCH_EVERY_S = 15.0
_VERIFY_TTL_S = 30.0
_DRIFT_HISTORY = 120
_SINCE = {"1h": 3600.0, "24h": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0}
_TECHNIQUES = {
    "AML.T0024.002": "extraction",
    "AML.T0024.000": "membership inference",
    "AML.T0024.001": "model inversion",
    "AML.T0043.001": "evasion probing",
    "AML.T0012": "valid accounts (shared or sybil keys)",
    "AML.T0040": "unusual API use",
    "AML.T0031": "drift",
}


def _swatch_hashes() -> str:
    """CSP hashes of the chart legends' ``style`` attributes (the only inline styles, one per palette colour)."""
    digests = (hashlib.sha256(f"background:{c}".encode()).digest() for c in PALETTE)
    return " ".join(f"'sha256-{base64.b64encode(d).decode()}'" for d in digests)


CONSOLE_CSP = (
    "default-src 'none'; "
    f"style-src 'self' 'unsafe-hashes' {_swatch_hashes()}; "
    "script-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The console's content security policy: its own stylesheet and script only, no inline script, forms to itself."""

_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


# -- sessions --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConsoleSession:
    """A logged-in console user: the key's client, role and id, the session's CSRF token, and its times."""

    digest: str
    client: str
    role: Role
    key_id: str
    csrf: str
    created: float
    last_seen: float

    @property
    def principal(self) -> Principal:
        return Principal(client=self.client, role=self.role, key_id=self.key_id, via="api-key")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class ConsoleSessions:
    """Console sessions in the table ``console_sessions`` of the gateway's database (shared by every worker)."""

    def __init__(self, url: str, *, idle_s: float, absolute_s: float, clock: Callable[[], float] = time.time) -> None:
        from sqlalchemy import Column, Double, MetaData, String, Table

        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock
        self._store: SqlStore = open_store(url, name="console-sessions")
        metadata = MetaData()
        self._t = Table(
            "console_sessions",
            metadata,
            Column("digest", String(64), primary_key=True),
            Column("client", String(200), nullable=False),
            Column("role", String(16), nullable=False),
            Column("key_id", String(32), nullable=False),
            Column("csrf", String(64), nullable=False),
            Column("created", Double, nullable=False),
            Column("last_seen", Double, nullable=False, index=True),
        )
        self._store.create(metadata)

    def close(self) -> None:
        self._store.close()

    def create(self, principal: Principal) -> tuple[str, ConsoleSession]:
        """A new session for ``principal``: the token for the cookie (shown nowhere else) and the session."""
        from sqlalchemy import delete, insert

        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = ConsoleSession(
            digest=_digest(token),
            client=principal.client,
            role=principal.role,
            key_id=principal.key_id or "",
            csrf=secrets.token_urlsafe(32),
            created=now,
            last_seen=now,
        )
        t = self._t
        with self._store.begin() as conn:
            conn.execute(delete(t).where((t.c.last_seen < now - self.idle_s) | (t.c.created < now - self.absolute_s)))
            conn.execute(
                insert(t).values(
                    digest=session.digest,
                    client=session.client,
                    role=session.role.value,
                    key_id=session.key_id,
                    csrf=session.csrf,
                    created=now,
                    last_seen=now,
                )
            )
        return token, session

    def get(self, token: str | None, *, touch: bool = True) -> ConsoleSession | None:
        """The live session of ``token`` (None when there is none, or it has expired: then it is deleted)."""
        from sqlalchemy import delete, select, update

        if not token or len(token) > 100:
            return None
        digest = _digest(token)
        t = self._t
        now = self.clock()
        with self._store.begin() as conn:
            row = conn.execute(select(t).where(t.c.digest == digest)).first()
            if row is None or not hmac.compare_digest(str(row.digest), digest):
                return None
            if now - float(row.last_seen) > self.idle_s or now - float(row.created) > self.absolute_s:
                conn.execute(delete(t).where(t.c.digest == digest))
                return None
            last_seen = float(row.last_seen)
            if touch and now - last_seen > _TOUCH_EVERY_S:
                conn.execute(update(t).where(t.c.digest == digest).values(last_seen=now))
                last_seen = now
        return ConsoleSession(
            digest=digest,
            client=row.client,
            role=Role(row.role),
            key_id=row.key_id,
            csrf=row.csrf,
            created=float(row.created),
            last_seen=last_seen,
        )

    def delete(self, token: str | None) -> None:
        from sqlalchemy import delete

        if token and len(token) <= 100:
            with self._store.begin() as conn:
                conn.execute(delete(self._t).where(self._t.c.digest == _digest(token)))


# -- rendering -------------------------------------------------------------------------------------------------------
def _finalize(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


def _when(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}g}"


def _pretty(value: object) -> str:
    plain = dict(value) if isinstance(value, Mapping) else value
    return json.dumps(plain, indent=2, sort_keys=True, default=str)[:20_000]


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelshield.gateway", "templates/console"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["chart"] = render_chart
    env.filters["when"] = _when
    env.filters["number"] = _number
    env.filters["pretty"] = _pretty
    env.globals["technique_name"] = lambda t: _TECHNIQUES.get(str(t), "")
    return env


@cache
def _static(name: str) -> bytes:
    return (resources.files("modelshield.gateway") / "templates" / "console" / "static" / name).read_bytes()


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"Content-Security-Policy": CONSOLE_CSP, **(extra or {})}


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(prefix=PREFIX, **context)
    return HTMLResponse(html, status_code=status, headers=_headers())


def error_page(status: int, message: str, *, request_id: str = "", session: ConsoleSession | None = None) -> Response:
    """A plain console page for an error: what happened in a sentence, never a stack trace."""
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Refused", 503: "Unavailable"}
    return _render(
        "message.html",
        status,
        title=titles.get(status, "Error"),
        message=message,
        request_id=request_id,
        session=session,
        page="",
    )


# -- what the pages show ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Traffic:
    """Inference traffic of a time window, from the shared audit log."""

    since: float
    total: int
    answered: int
    rejected: int
    statuses: tuple[tuple[int, int], ...]
    p50: float | None
    p95: float | None
    p99: float | None
    clients: tuple[tuple[str, int, int], ...]  # (client, requests, rejected)
    truncated: bool
    per_minute: Chart | None


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _records(gateway: Gateway, since: float) -> list[dict[str, Any]]:
    from modelshield.gateway.auditlog import read_records

    return read_records(gateway.config.database_url, since=since, limit=_TRAFFIC_ROWS)


def _traffic(records: Sequence[Mapping[str, Any]], since: float, now: float) -> _Traffic:
    infer = [r for r in records if r["kind"] == "infer"]
    statuses = Counter(int(r["status"]) for r in infer)
    latencies = [float(r["latency_ms"]) for r in infer if int(r["status"]) == 200]
    by_client: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for r in infer:
        by_client[str(r["client"])] += 1
        if int(r["status"]) != 200:
            refused[str(r["client"])] += 1
    minutes = max(1, min(60, math.ceil((now - since) / 60)))
    start = now - 60 * minutes
    answered_per = [0.0] * minutes
    refused_per = [0.0] * minutes
    for r in infer:
        slot = int((float(r["time"]) - start) // 60)
        if 0 <= slot < minutes:
            (answered_per if int(r["status"]) == 200 else refused_per)[slot] += 1
    chart = (
        Chart(
            "Inference requests per minute",
            "line",
            x=tuple(float(m - minutes) for m in range(minutes)),
            series={"answered": tuple(answered_per), "refused": tuple(refused_per)},
            x_label="minutes ago",
            y_label="requests",
        )
        if infer
        else None
    )
    return _Traffic(
        since=since,
        total=len(infer),
        answered=statuses.get(200, 0),
        rejected=len(infer) - statuses.get(200, 0),
        statuses=tuple(sorted(statuses.items())),
        p50=_percentile(latencies, 0.5),
        p95=_percentile(latencies, 0.95),
        p99=_percentile(latencies, 0.99),
        clients=tuple((c, n, refused.get(c, 0)) for c, n in by_client.most_common(10)),
        truncated=len(records) >= _TRAFFIC_ROWS,
        per_minute=chart,
    )


def _rejections(gateway: Gateway) -> list[tuple[str, int]]:
    """Refusals by reason counted by this worker since it started (Prometheus' counter)."""
    out: list[tuple[str, int]] = []
    for metric in gateway.metrics.rejections.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.value > 0:
                out.append((str(sample.labels.get("reason", "")), int(sample.value)))
    return sorted(out, key=lambda item: -item[1])


@dataclass(frozen=True)
class _Integrity:
    ok: bool
    checked: float
    text: str
    records: int | None = None
    checkpoint_seq: int | None = None
    checkpoint_time: float | None = None
    signed: bool = False


class _Cache:
    """Per-process caches: the audit log's last verification and the drift results seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.integrity: _Integrity | None = None
        self.drift: deque[tuple[float, Any]] = deque(maxlen=_DRIFT_HISTORY)


def _verify(gateway: Gateway, cached: _Cache) -> _Integrity:
    from modelshield.gateway.auditlog import AuditLogUnavailable, LogTamperedError, verify_log

    now = time.time()
    with cached.lock:
        if cached.integrity is not None and now - cached.integrity.checked < _VERIFY_TTL_S:
            return cached.integrity
        key = gateway.signing_key.public() if gateway.signing_key is not None else None
        try:
            result = verify_log(gateway.config.database_url, key)
            integrity = _Integrity(
                ok=True,
                checked=now,
                text=result.summary(),
                records=result.head_seq,
                checkpoint_seq=result.last_checkpoint_seq,
                checkpoint_time=result.last_checkpoint_time,
                signed=result.checkpoints_verified > 0,
            )
        except LogTamperedError as exc:
            integrity = _Integrity(ok=False, checked=now, text=exc.message)
        except AuditLogUnavailable as exc:
            integrity = _Integrity(ok=False, checked=now, text=exc.message)
        cached.integrity = integrity
        return integrity


def _drift_history(gateway: Gateway, cached: _Cache) -> list[tuple[float, Any]]:
    result = gateway.monitor.last_drift
    with cached.lock:
        if result is not None and (not cached.drift or cached.drift[-1][1] is not result):
            cached.drift.append((time.time(), result))
        return list(cached.drift)


# -- the routes ------------------------------------------------------------------------------------------------------
class _Form:
    """A parsed ``application/x-www-form-urlencoded`` body (bounded)."""

    def __init__(self, fields: Mapping[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0] if values else default


async def _form(request: Request) -> _Form | None:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return _Form(fields)


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _int(value: str | None, *, low: int = 1, high: int = 1 << 62) -> int | None:
    if value is None or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if low <= number <= high else None


class _Console:
    def __init__(self, gateway: Gateway) -> None:
        settings = gateway.config.console
        self.gateway = gateway
        self.sessions = ConsoleSessions(
            gateway.config.database_url,
            idle_s=settings.idle_minutes * 60.0,
            absolute_s=settings.absolute_minutes * 60.0,
        )
        self.cache = _Cache()
        self.secure = gateway.config.server.ssl_certfile is not None

    # -- plumbing ------------------------------------------------------------------------------------------------
    def request_id(self, request: Request) -> str:
        return str(request.scope.get("state", {}).get("request_id", ""))

    async def session(self, request: Request, *, touch: bool = True) -> ConsoleSession | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        session = await run_in_threadpool(self.sessions.get, token, touch=touch)
        if session is None:
            return None
        if not await run_in_threadpool(self._key_holds, session):
            await run_in_threadpool(self.sessions.delete, token)
            return None
        request.state.principal = session.principal  # the audit record of this request names the user
        return session

    def _key_holds(self, session: ConsoleSession) -> bool:
        """The session's key is still active with the same role (revoking the key ends its sessions)."""
        try:
            info = self.gateway.keys.get(session.key_id)
        except ModelShieldError:
            return False
        return info.status(time.time()) == "active" and info.role is session.role and info.client == session.client

    def to_login(self) -> Response:
        return RedirectResponse(f"{PREFIX}/login", status_code=303, headers=_headers())

    def secure_request(self, request: Request) -> bool:
        return self.secure or request.url.scheme == "https"

    async def checked_post(self, request: Request) -> tuple[ConsoleSession, _Form] | Response:
        """The session and form of a POST, or the response that refuses it (login, 403 without the CSRF token)."""
        session = await self.session(request)
        if session is None:
            return self.to_login()
        form = await _form(request)
        if form is None or not _same(form.get("csrf"), session.csrf):
            return error_page(
                403,
                "This form was refused: it did not carry the console's security token. Reload the page and try again.",
                request_id=self.request_id(request),
                session=session,
            )
        return session, form

    def admin_only(self, request: Request, session: ConsoleSession, doing: str) -> Response | None:
        if session.role is Role.ADMIN:
            return None
        return error_page(
            403,
            f"Only an admin may {doing}; you are logged in as {session.client} with the {session.role.value} role.",
            request_id=self.request_id(request),
            session=session,
        )

    def page(
        self, template: str, session: ConsoleSession, page: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        return _render(template, status, session=session, page=page, **context)

    # -- login ---------------------------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if await self.session(request) is not None:
            return RedirectResponse(f"{PREFIX}/", status_code=303, headers=_headers())
        return self._login_page(request, 200, "")

    def _login_page(self, request: Request, status: int, problem: str) -> Response:
        token = secrets.token_urlsafe(32)
        response = _render("login.html", status, session=None, page="login", problem=problem, login_csrf=token)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path=f"{PREFIX}/login",
            httponly=True,
            samesite="strict",
            secure=self.secure_request(request),
        )
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if form is None or not expected or not _same(form.get("csrf"), expected):
            return error_page(
                403,
                "The login form was refused: it did not carry the console's security token. Open the login page "
                "again (cookies must be enabled).",
                request_id=self.request_id(request),
            )
        key = form.get("key").strip()
        if not key or len(key) > _MAX_KEY_CHARS:
            return self._login_page(request, 401, "Enter an analyst or admin API key.")
        try:
            principal = await run_in_threadpool(self.gateway.auth.authenticate, f"Bearer {key}", None)
        except AuthenticationError:
            return self._login_page(request, 401, "That key was not accepted: it is unknown, revoked or expired.")
        except KeyStoreError:
            return error_page(503, "The gateway cannot check keys now; try again shortly.")
        request.state.principal = principal
        if principal.via != "api-key":
            return self._login_page(request, 401, "The console takes API keys (msk_...), not tokens.")
        if principal.role is Role.CLIENT:
            return error_page(
                403,
                f"{principal.client} holds a client key: client keys cannot open the console. Ask an administrator "
                "for an analyst key (to read) or an admin key (to act).",
                request_id=self.request_id(request),
            )
        token, _ = await run_in_threadpool(self.sessions.create, principal)
        self.gateway.record_admin("console-login", principal, f"console session for key {principal.key_id}")
        response = RedirectResponse(f"{PREFIX}/", status_code=303, headers=_headers())
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.sessions.absolute_s),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=self.secure_request(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    async def logout(self, request: Request) -> Response:
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        session, _ = checked
        await run_in_threadpool(self.sessions.delete, request.cookies.get(COOKIE))
        self.gateway.record_admin("console-logout", session.principal, "console session ended")
        response = self.to_login()
        response.delete_cookie(
            COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=self.secure_request(request)
        )
        return response

    # -- overview ------------------------------------------------------------------------------------------------
    def _overview(self) -> dict[str, Any]:
        gateway = self.gateway
        now = time.time()
        since = now - 3600.0
        traffic = _traffic(_records(gateway, since), since, now)
        model = gateway.deployment.model
        return {
            "traffic": traffic,
            "rejections": _rejections(gateway),
            "incidents": gateway.monitor.alerts.incidents(status="open", limit=10),
            "pending": len(gateway.monitor.actions.actions(status="pending", limit=1000)),
            "model": model,
            "integrity": _verify(gateway, self.cache),
            "monitoring": gateway.config.monitoring.enabled,
            "now": now,
        }

    async def overview(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        data = await run_in_threadpool(self._overview)
        return self.page("overview.html", session, "overview", **data)

    async def live(self, request: Request) -> Response:
        session = await self.session(request, touch=False)  # polling does not keep a session alive
        if session is None:
            return self.to_login()
        data = await run_in_threadpool(self._overview)
        return self.page("live.html", session, "overview", **data)

    # -- incidents -----------------------------------------------------------------------------------------------
    async def incidents(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        q = request.query_params
        severity = q.get("severity", "")
        severity = severity if severity in {s.value for s in Severity} else ""
        technique = q.get("technique", "")
        technique = technique if technique in _TECHNIQUES else ""
        client = q.get("client", "")[:200]
        since = q.get("since", "")
        since = since if since in _SINCE else ""
        status = q.get("status", "")
        status = status if status in {"open", "closed"} else ""
        alerts = self.gateway.monitor.alerts

        def load() -> list[Any]:
            found = alerts.incidents(status=status or None, limit=1000)
            now = time.time()
            return [
                i
                for i in found
                if (not severity or i.severity.rank >= Severity(severity).rank)
                and (not technique or i.technique == technique)
                and (not client or client in i.clients or client == i.actor)
                and (not since or i.updated >= now - _SINCE[since])
            ][:200]

        found = await run_in_threadpool(load)
        return self.page(
            "incidents.html",
            session,
            "incidents",
            incidents=found,
            filters={"severity": severity, "technique": technique, "client": client, "since": since, "status": status},
            severities=[s.value for s in Severity],
            techniques=_TECHNIQUES,
            spans=list(_SINCE),
            monitoring=self.gateway.config.monitoring.enabled,
        )

    def _incident(self, incident_id: int) -> dict[str, Any]:
        gateway = self.gateway
        incident, alerts = gateway.monitor.alerts.incident(incident_id)
        charts: list[Markup] = []
        if alerts:
            shown = alerts[-12:]
            charts.append(
                render_chart(
                    Chart(
                        "Each alert's statistic against its threshold",
                        "bar",
                        x=tuple(f"#{a.id} {a.alert.detector}" for a in shown),
                        series={
                            "score": tuple(a.alert.score for a in shown),
                            "threshold": tuple(a.alert.threshold for a in shown),
                        },
                        y_label="score",
                    )
                )
            )
        start = incident.opened - 900.0  # a quarter of an hour before, up to ten minutes after the last alert
        end = max(min(time.time(), incident.updated + 600.0), incident.opened + 60.0)
        records = [r for r in _records(gateway, start) if r["kind"] == "infer" and float(r["time"]) <= end]
        if records:
            slots = 30
            width = (end - start) / slots
            own = [0.0] * slots
            others: dict[str, list[float]] = {}
            for r in records:
                slot = min(slots - 1, int((float(r["time"]) - start) // width))
                if r["client"] == incident.actor or r["client"] in incident.clients:
                    own[slot] += 1
                else:
                    others.setdefault(str(r["client"]), [0.0] * slots)[slot] += 1
            typical = [sorted(v[s] for v in others.values())[len(others) // 2] if others else 0.0 for s in range(slots)]
            minutes = width / 60.0
            charts.append(
                render_chart(
                    Chart(
                        f"Query rate of {incident.actor} against the other clients' median",
                        "line",
                        x=tuple(round((start + (s + 0.5) * width - incident.opened) / 60.0, 1) for s in range(slots)),
                        series={
                            incident.actor: tuple(v / minutes for v in own),
                            "median other client": tuple(v / minutes for v in typical),
                        },
                        x_label="minutes from the incident's opening",
                        y_label="requests per minute",
                    )
                )
            )
        actions = [a for a in gateway.monitor.actions.actions(limit=1000) if a.incident_id == incident.id]
        return {"incident": incident, "alerts": alerts, "charts": charts, "actions": actions}

    async def incident(self, request: Request, incident_id: str) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        number = _int(incident_id)
        if number is None:
            return error_page(404, "There is no such incident.", request_id=self.request_id(request), session=session)
        try:
            data = await run_in_threadpool(self._incident, number)
        except ModelShieldError:
            return error_page(
                404, f"There is no incident {number}.", request_id=self.request_id(request), session=session
            )
        return self.page("incident.html", session, "incidents", **data)

    # -- review queue --------------------------------------------------------------------------------------------
    def _review(self) -> dict[str, Any]:
        monitor = self.gateway.monitor
        pending = monitor.actions.actions(status="pending", limit=100)
        evidence: dict[int, Any] = {}
        for action in pending[:50]:
            if action.incident_id is not None and action.incident_id not in evidence:
                try:
                    evidence[action.incident_id] = monitor.alerts.incident(action.incident_id)
                except ModelShieldError:
                    continue
        return {
            "pending": pending,
            "evidence": evidence,
            "active": monitor.actions.actions(status="active", limit=200),
            "decided": [a for a in monitor.actions.actions(limit=200) if a.status in {"approved", "denied", "lifted"}][
                :20
            ],
            "response_enabled": self.gateway.config.response.enabled,
        }

    async def review(self, request: Request, notice: str = "", status: int = 200) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        data = await run_in_threadpool(self._review)
        return self.page("review.html", session, "review", status, notice=notice, **data)

    async def decide(self, request: Request, action_id: str) -> Response:
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        refused = self.admin_only(request, session, "decide on actions")
        if refused is not None:
            return refused
        number = _int(action_id)
        decision = form.get("decision")
        reason = form.get("reason").strip()
        if number is None or decision not in {"approve", "deny", "lift"}:
            return error_page(400, "Choose approve, deny or lift for an action in the queue.", session=session)
        if not reason or len(reason) > _MAX_REASON:
            return await self.review(request, f"Give a reason (1 to {_MAX_REASON} characters) for the decision.", 400)
        gateway = self.gateway
        try:  # the admin API's decision, with the reviewer's reason in the same audit record
            await run_in_threadpool(
                gateway.monitor.decide, number, decision, session.principal.client, now=gateway.clock(), why=reason
            )
        except ModelShieldError as exc:
            return await self.review(request, exc.message, 409)
        return RedirectResponse(f"{PREFIX}/review", status_code=303, headers=_headers())

    # -- clients -------------------------------------------------------------------------------------------------
    def _clients(self) -> dict[str, Any]:
        gateway = self.gateway
        now = time.time()
        keys = gateway.keys.list()
        records = [r for r in _records(gateway, now - 86_400.0) if r["kind"] == "infer"]
        last_hour: Counter[str] = Counter()
        before: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        for r in records:
            client = str(r["client"])
            if float(r["time"]) >= now - 3600.0:
                last_hour[client] += 1
                if int(r["status"]) != 200:
                    refused[client] += 1
            else:
                before[client] += 1
        span_h = max(1.0, min(23.0, (now - min((float(r["time"]) for r in records), default=now)) / 3600.0 - 1.0))
        rows: list[dict[str, Any]] = []
        by_client: dict[str, list[Any]] = {}
        for key in keys:
            by_client.setdefault(key.client, []).append(key)
        for client, client_keys in sorted(by_client.items()):
            budget = next((k.rows_per_day for k in client_keys if k.rows_per_day), None) or (
                gateway.config.limits.rows_per_day
            )
            try:
                used: int | None = gateway.limiter.usage(client)
            except ModelShieldError:
                used = None
            baseline = before.get(client, 0) / span_h
            rows.append(
                {
                    "client": client,
                    "key_list": [
                        {"key_id": k.key_id, "role": k.role.value, "status": k.status(now), "expires": k.expires}
                        for k in client_keys
                    ],
                    "roles": sorted({k.role.value for k in client_keys}),
                    "used": used,
                    "budget": budget,
                    "last_hour": last_hour.get(client, 0),
                    "baseline": baseline,
                    "refused": refused.get(client, 0),
                    "sanctions": gateway.monitor.sanctions(client),
                }
            )
        return {"clients": rows, "truncated": len(records) >= _TRAFFIC_ROWS}

    async def clients(self, request: Request, notice: str = "", status: int = 200) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        data = await run_in_threadpool(self._clients)
        return self.page("clients.html", session, "clients", status, notice=notice, **data)

    async def sanction(self, request: Request, verb: str) -> Response:
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        refused = self.admin_only(request, session, f"{verb} clients")
        if refused is not None:
            return refused
        client = form.get("client")
        reason = form.get("reason").strip()
        if not client or len(client) > 200:
            return error_page(400, "Name the client.", session=session)
        if not reason or len(reason) > _MAX_REASON:
            return await self.clients(
                request, f"Give a reason (1 to {_MAX_REASON} characters) to {verb} a client.", 400
            )
        principal = session.principal
        work = self._suspend if verb == "suspend" else self._restore
        notice = await run_in_threadpool(work, client, reason, principal)
        self.gateway.record_admin(f"console-{verb}", principal, f"{client}: {reason}")
        return await self.clients(request, notice)

    def _suspend(self, client: str, reason: str, principal: Principal) -> str:
        """An admin's suspension: an incident raised by the console, and the response store's suspend action on it
        (the same path the policy takes), in force at once on every worker."""
        from modelshield.gateway.response import ActionKind, Rule
        from modelshield.monitoring.interface import Alert, Technique

        gateway = self.gateway
        now = gateway.clock()
        outcome = gateway.monitor.alerts.add(
            Alert(
                time=now,
                client=client,
                detector="console",
                technique=Technique.API_ACCESS,
                severity=Severity.HIGH,
                score=1.0,
                threshold=0.0,
                summary=f"Suspended from the console by {principal.client}: {reason}",
                evidence={"reason": reason, "by": principal.client},
            )
        )
        if outcome.incident is None:
            return f"{client} was not suspended: alerts about it are suppressed."
        rule = Rule(name=f"console: {principal.client}"[:100], action=ActionKind.SUSPEND, duration_s=0.0)
        action = gateway.monitor.actions.propose(outcome.incident, rule, now=now)
        if action is None:
            return (
                f"{client} was not suspended again: incident {outcome.incident.id} already had a suspension. Lifted "
                "suspensions of one incident stay lifted; try again once [alerts] dedup_s has passed."
            )
        gateway.monitor.board.refresh()
        gateway.monitor.record_action(action, principal.client)
        return f"{client} is suspended (action {action.id}): its requests are refused until it is restored."

    def _restore(self, client: str, reason: str, principal: Principal) -> str:
        gateway = self.gateway
        lifted = []
        for action in gateway.monitor.actions.active(gateway.clock()):
            if client in action.clients or action.actor == client:
                lifted.append(
                    gateway.monitor.decide(action.id, "lift", principal.client, now=gateway.clock(), why=reason).id
                )
        if not lifted:
            return f"No action holds for {client}: nothing to restore."
        return f"{client} is restored: lifted action(s) {', '.join(str(i) for i in lifted)}."

    # -- drift ---------------------------------------------------------------------------------------------------
    async def drift(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        settings = self.gateway.config.monitoring
        history = _drift_history(self.gateway, self.cache)
        result = history[-1][1] if history else None
        columns = sorted(result.columns, key=lambda c: (not c.drifted, c.q_value, -c.effect)) if result else []
        charts: list[Markup] = []
        if columns:
            top = columns[:12]
            charts.append(
                render_chart(
                    Chart(
                        "Effect size per feature, worst first (KS D or total variation distance)",
                        "bar",
                        x=tuple(c.name for c in top),
                        series={"effect": tuple(c.effect for c in top)},
                        y_range=(0.0, 1.0),
                    )
                )
            )
        drift_monitor = self.gateway.monitor.drift
        for column in columns[:4] if drift_monitor is not None else ():
            hist = drift_monitor.histogram(column.name)
            if hist is not None:
                charts.append(
                    render_chart(
                        Chart(
                            f"{column.name}: reference against the current window (share of rows)",
                            "bar",
                            x=hist.labels,
                            series={"reference": hist.reference, f"current ({hist.n_current} rows)": hist.current},
                            y_range=(0.0, max(1e-9, *hist.reference, *hist.current)),
                        )
                    )
                )
        if len(history) >= 2 and columns:
            worst = [c.name for c in columns[:4]]
            series: dict[str, tuple[float, ...]] = {}
            for name in worst:
                series[name] = tuple(
                    next((c.effect for c in r.columns if c.name == name), math.nan) for _, r in history
                )
            charts.append(
                render_chart(
                    Chart(
                        "Effect size of the worst features over time",
                        "line",
                        x=tuple(round((t - history[-1][0]) / 60.0, 1) for t, _ in history),
                        series=series,
                        x_label="minutes ago",
                        y_label="effect",
                    )
                )
            )
        return self.page(
            "drift.html",
            session,
            "drift",
            enabled=settings.enabled and settings.drift_window > 0,
            window=settings.drift_window,
            step=settings.drift_step,
            result=result,
            columns=columns,
            charts=charts,
            windows=len(history),
        )

    # -- models --------------------------------------------------------------------------------------------------
    def _registry(self) -> Any:
        from modelshield.registry import Registry

        model = self.gateway.config.model
        return Registry(self.gateway.config.path(model.registry_dir), model.registry_db)

    def _models(self) -> dict[str, Any]:
        spec = self.gateway.config.model.registry
        if spec is None:
            return {"spec": None, "models": []}
        served = spec.split("@", 1)[0]
        with self._registry() as registry:
            summaries = sorted(registry.list(), key=lambda m: (m.name != served, m.name))[:20]
            models = [(m, list(reversed(registry.versions(m.name)))[:50]) for m in summaries]
        return {"spec": spec, "models": models}

    async def models(self, request: Request, notice: str = "", status: int = 200) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        try:
            data = await run_in_threadpool(self._models)
        except ModelShieldError as exc:
            data = {"spec": self.gateway.config.model.registry, "models": [], "problem": exc.message}
        return self.page(
            "models.html",
            session,
            "models",
            status,
            notice=notice,
            served=self.gateway.deployment.model,
            problem=data.pop("problem", ""),
            **data,
        )

    async def report(self, request: Request) -> Response:
        session = await self.session(request)
        if session is None:
            return self.to_login()
        name = request.query_params.get("name", "")[:64]
        version = _int(request.query_params.get("version"))
        if self.gateway.config.model.registry is None or not name or version is None:
            return error_page(404, "There is no such audit report.", session=session)

        def load() -> str | None:
            from modelshield.findings import Report
            from modelshield.reporting.html import render_html

            with self._registry() as registry:
                v = registry.show(name, version)
                if v.audit_digest is None:
                    return None
                raw = registry.store.read_bytes(v.audit_digest)
            return render_html(Report.from_json(raw.decode("utf-8")))

        try:
            html = await run_in_threadpool(load)
        except ModelShieldError:
            html = None
        if html is None:
            return error_page(404, f"Version {version} of {name} has no stored audit report.", session=session)
        return HTMLResponse(html, headers={"Content-Security-Policy": _REPORT_CSP})

    async def registry_action(self, request: Request, verb: str) -> Response:
        checked = await self.checked_post(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        refused = self.admin_only(request, session, f"{verb} model versions")
        if refused is not None:
            return refused
        spec = self.gateway.config.model.registry
        name = form.get("name")[:64]
        version = _int(form.get("version")) if verb == "promote" else None
        if spec is None or not name or (verb == "promote" and version is None):
            return error_page(400, "Name a model (and, to promote, a version) of the registry.", session=session)
        if form.get("confirm") != "yes":
            return self.page(
                "confirm.html",
                session,
                "models",
                verb=verb,
                name=name,
                version=version,
                served=self.gateway.deployment.model,
            )
        principal = session.principal
        public_key = self.gateway.config.model.public_key

        def work() -> str:
            with self._registry() as registry:
                if verb == "promote":
                    if public_key is None:
                        return "Promotion needs the publisher's public key: set [model] public_key."
                    assert version is not None  # noqa: S101 - checked above
                    v = registry.promote(
                        name, version, public_key=self.gateway.config.path(public_key), actor=principal.client
                    )
                else:
                    v = registry.rollback(name, actor=principal.client)
            swapped = self.gateway.watcher.check_now()
            return f"{name} v{v.version} is now in production" + (" and served." if swapped else ".")

        try:
            notice = await run_in_threadpool(work)
        except ModelShieldError as exc:
            self.gateway.record_admin(f"console-{verb}-refused", principal, f"{name}: {exc.message}"[:500])
            return await self.models(request, f"Refused: {exc.message}", 409)
        self.gateway.record_admin(f"console-{verb}", principal, notice)
        return await self.models(request, notice)


def add_console(app: FastAPI, gateway: Gateway) -> None:
    """Mount the console's routes under ``/console`` on the gateway's app."""
    console = _Console(gateway)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def guarded(request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await call()
        except Exception as exc:
            request_id = console.request_id(request)
            log.error("Console error in request %s", request_id, exc_info=exc)
            return error_page(
                500, "The console could not show this page; the gateway's log has the details.", request_id=request_id
            )

    def page(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            return await guarded(request, lambda: handler(request))

        return run

    @router.get("/static/console.css")
    async def css() -> Response:
        return Response(_static("console.css"), media_type="text/css", headers={"Cache-Control": "no-cache"})

    @router.get("/static/icon.svg")
    async def icon() -> Response:
        return Response(_static("icon.svg"), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @router.get("/static/console.js")
    async def js() -> Response:
        return Response(_static("console.js"), media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    routes: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = [
        ("GET", "/login", console.login_form),
        ("POST", "/login", console.login),
        ("POST", "/logout", console.logout),
        ("GET", "/", console.overview),
        ("GET", "/live", console.live),
        ("GET", "/incidents", console.incidents),
        ("GET", "/drift", console.drift),
        ("GET", "/review", console.review),
        ("GET", "/clients", console.clients),
        ("GET", "/models", console.models),
        ("GET", "/models/report", console.report),
    ]
    for method, path, handler in routes:
        router.add_api_route(path, page(handler), methods=[method], response_class=HTMLResponse)

    @router.get("/incidents/{incident_id}")
    async def incident(incident_id: str, request: Request) -> Response:
        return await guarded(request, lambda: console.incident(request, incident_id[:30]))

    @router.post("/review/{action_id}")
    async def decide(action_id: str, request: Request) -> Response:
        return await guarded(request, lambda: console.decide(request, action_id[:30]))

    @router.post("/clients/suspend")
    async def suspend(request: Request) -> Response:
        return await guarded(request, lambda: console.sanction(request, "suspend"))

    @router.post("/clients/restore")
    async def restore(request: Request) -> Response:
        return await guarded(request, lambda: console.sanction(request, "restore"))

    @router.post("/models/promote")
    async def promote(request: Request) -> Response:
        return await guarded(request, lambda: console.registry_action(request, "promote"))

    @router.post("/models/rollback")
    async def rollback(request: Request) -> Response:
        return await guarded(request, lambda: console.registry_action(request, "rollback"))

    app.include_router(router)
    gateway.on_close(console.sessions.close)
