"""The security gateway: a FastAPI app that serves one model over the Open Inference Protocol v2, behind every layer.

    >>> from modelshield.gateway.app import Gateway
    >>> gateway = Gateway(load_config("gateway.toml"))  # doctest: +SKIP
    >>> app = gateway.app  # run it with uvicorn  # doctest: +SKIP

An inference request passes, in order (each refusal is final, logged, counted, and answered with a JSON error that
names the problem and never a stack trace or an internal path):

1. the body limit (413 before the body is read when ``Content-Length`` is too large, or once too many bytes came);
2. authentication and the role (401 without valid credentials, 403 for a role that may not infer; 404 for a model
   name that is not served, checked after authentication so that names do not leak);
3. the protocol (422 naming the field) and the batch size (413 over ``[limits] max_batch_rows``);
4. the client's limits (429 with ``Retry-After``; 503 when the limits store is down and ``on_storage_error`` is
   ``reject``);
5. input validation against the model's schema (422 naming the row, the feature and the rule): invalid input never
   reaches the model;
6. the actions in force for the client (:mod:`modelshield.gateway.response`: 403 when suspended or when a row
   matches a blocked pattern, 429 past a throttle, labels only);
7. the input guards (the adversarial-input detector; 403 when set to ``block``), the model (504 past
   ``request_timeout_s``), the output guards (the extraction monitor), the monitors (:mod:`modelshield.gateway.monitor`:
   the output watermark and the detectors, whose alerts become incidents and actions off the request path) and the
   client's output policy;
8. the audit record: a 200 is sent only once its record is committed to the hash-chained log; if the log's store is
   down the answer is 503, never an unlogged prediction.

Every response carries ``X-Request-Id`` and, when a model answered, ``X-Model-Digest`` and ``X-Model-Version``.
Health: ``/v2/health/live`` (the process runs) and ``/v2/health/ready`` (a verified model is loaded and the audit log
is writable). ``/metrics`` (Prometheus, analyst role) and the admin API under ``[server] admin_prefix`` (keys for
admins; the log and status for analysts) and the security console under ``/console``
(:mod:`modelshield.gateway.console`, unless ``[console] enabled = false``) share the port and are gated by role.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelshield._version import __version__
from modelshield.errors import InvalidParameterError, ModelShieldError
from modelshield.gateway.auditlog import AuditLog, AuditLogUnavailable, AuditRecord
from modelshield.gateway.config import GatewayConfig, GuardMode, OutputPolicy
from modelshield.gateway.identity import (
    AuthenticationError,
    Authenticator,
    JwtSettings,
    KeyStore,
    KeyStoreError,
    Permission,
    Principal,
    Role,
)
from modelshield.gateway.limits import Limiter, LimitSettings, LimitsUnavailable
from modelshield.gateway.metrics import GatewayMetrics
from modelshield.gateway.monitor import GatewayMonitor
from modelshield.gateway.protocol import InferenceRequest, ProtocolError, decode_inputs, encode_output
from modelshield.gateway.serving import Deployment, ModelWatcher, build_deployment, discard, load_served, source_state
from modelshield.gateway.validation import InvalidRequestInputError

if TYPE_CHECKING:
    from modelshield.defenses.interface import GuardRequest, InferenceGuard
    from modelshield.defenses.output import OutputHardening

__all__ = ["Gateway", "Refusal", "create_app"]

log = logging.getLogger(__name__)

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_MAX_LABELS_LOGGED = 256
_UNAUDITED = frozenset({"/v2/health/live", "/v2/health/ready"})  # probes every few seconds; nothing to account for

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refusal(Exception):  # noqa: N818 - a refusal is an outcome, not an error
    """A request refused with an HTTP status: ``reason`` is the metrics label, ``message`` what the client reads."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        logged: str = "",
        principal: Principal | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}
        self.logged = logged or message
        self.principal = principal  # who was refused, when known (a 403)


class _Ticket:
    """Who answers a request that may time out: the worker thread (its answer) or the event loop (504), never both.

    The thread :meth:`claim` s the answer just before it writes the record of what it sends; the event loop, at the
    timeout, :meth:`abandon` s the request unless the thread has claimed it. So the audit record always says what the
    client got.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claimed = False
        self._abandoned = False
        self.client = "unauthenticated"

    def claim(self) -> bool:
        with self._lock:
            if self._abandoned:
                return False
            self._claimed = True
            return True

    def abandon(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._abandoned = True
            return True


class _Hardening:
    """The client's output policy as a function of the model's probabilities."""

    def __init__(self, policy: OutputPolicy, hardening: OutputHardening | None) -> None:
        self.policy = policy
        self.hardening = hardening


# -- ASGI middleware -------------------------------------------------------------------------------------------------
class _Envelope:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware): request ids, security headers, and
    the body limit, enforced on ``Content-Length`` before reading and on the bytes actually received."""

    def __init__(
        self, app: ASGIApp, *, max_body: int, tls: bool, on_done: Callable[[Scope, int], None] | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.on_done = on_done
        self.headers = [*_SECURITY_HEADERS]
        if tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        extra = [*self.headers, (b"x-request-id", request_id.encode())]
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                own = message.get("headers", [])
                # A response with its own content security policy (the console's pages) keeps it: two policies
                # would both apply, and the stricter default one would block the console's stylesheet.
                if any(k.lower() == b"content-security-policy" for k, _ in own):
                    message["headers"] = [*own, *(h for h in extra if h[0] != b"content-security-policy")]
                else:
                    message["headers"] = [*own, *extra]
            await send(message)

        try:
            await self._call(scope, receive, send_with_headers)
        finally:
            if self.on_done is not None and not scope["state"].get("audited") and scope["path"] not in _UNAUDITED:
                self.on_done(scope, status)

    async def _call(self, scope: Scope, receive: Receive, send_with_headers: Send) -> None:
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send_with_headers, 413, _too_large(self.max_body))
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send_with_headers)
        except _BodyTooLarge:
            await _send_json(send_with_headers, 413, _too_large(self.max_body))


class _BodyTooLarge(Exception):  # noqa: N818 - internal control flow
    pass


def _too_large(limit: int) -> dict[str, str]:
    return {"error": f"The request body is larger than the gateway accepts ({limit} bytes); send smaller batches."}


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


# -- the gateway -----------------------------------------------------------------------------------------------------
@dataclass
class _Outcome:
    """What one inference produced, for the response and the audit record."""

    body: dict[str, Any]
    decision: str
    reasons: tuple[str, ...]
    summary: dict[str, Any]


class Gateway:
    """The gateway's state (model, keys, limits, log, metrics) and its FastAPI :attr:`app`.

    Construction loads and verifies the model, fits the guards and opens the stores; any problem raises before a
    port is opened. :meth:`close` stops the model watcher and flushes the audit log.
    """

    app_version = __version__

    def __init__(
        self, config: GatewayConfig, *, start_watcher: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.clock = clock
        self.metrics = GatewayMetrics()
        self.signing_key = self._signing_key()
        # The model first: nothing is opened (no writer thread, no connection) for a model that does not verify.
        model = load_served(config)
        try:
            self._deployment = build_deployment(config, model)
            self._open_stores(config)
            self.monitor = GatewayMonitor(config, clock=clock, audit=self._audit_event, metrics=self.metrics)
            self.monitor.attach(self._deployment)
        except BaseException:
            discard(model)
            if hasattr(self, "monitor"):
                self.monitor.close()
            if hasattr(self, "log"):
                self.log.close()
            raise
        self._throttles: dict[float, Limiter] = {}
        self._throttles_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._closed = False
        self._on_close: list[Callable[[], None]] = []
        self._hardenings: dict[OutputPolicy, _Hardening] = {}
        self._fit_hardenings(self._deployment)
        # Each inference request runs start to end on one thread of this pool (one hand-off from the event loop);
        # the event loop enforces request_timeout_s around it.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="modelshield-request")
        self.watcher = ModelWatcher(config, source_state(config), self.swap, self._swap_refused)
        if start_watcher:
            self.watcher.start()
        self.metrics.model_info(model.name, model.version, model.digest)
        self._record_event("model-load", model.source, reasons=(f"serving {model.digest}",))
        self.app = self._build_app()
        log.info("Serving %s version %s (%s) from %s", model.name, model.version, model.digest, model.source)

    # -- set-up ------------------------------------------------------------------------------------------------------
    def _open_stores(self, config: GatewayConfig) -> None:
        """Keys, limits and the audit log (the log's writer thread starts here)."""
        self.keys = KeyStore(config.database_url)
        jwt = None
        if config.auth.jwt_jwks is not None:
            assert config.auth.jwt_issuer is not None  # noqa: S101 - the config validator requires all three
            assert config.auth.jwt_audience is not None  # noqa: S101
            jwt = JwtSettings(
                jwks_path=config.path(config.auth.jwt_jwks),
                issuer=config.auth.jwt_issuer,
                audience=config.auth.jwt_audience,
                algorithms=config.auth.jwt_algorithms,
                role_claim=config.auth.jwt_role_claim,
                leeway_s=config.auth.jwt_leeway_s,
            )
        self.auth = Authenticator(
            self.keys,
            refresh_s=config.auth.key_refresh_s,
            jwt=jwt,
            anonymous_role=Role(config.auth.anonymous_role) if config.auth.allow_anonymous else None,
        )
        self.limiter = Limiter(
            LimitSettings(
                requests_per_second=config.limits.requests_per_second,
                rows_per_second=config.limits.rows_per_second,
                rows_per_day=config.limits.rows_per_day,
                fail_open=config.limits.on_storage_error == "allow",
            ),
            config.store.redis or "memory://",
        )
        if config.limits.max_batch_rows > self.limiter.max_rows_per_request:
            raise InvalidParameterError(
                f"[limits] max_batch_rows is {config.limits.max_batch_rows}, but rows_per_second lets at most "
                f"{self.limiter.max_rows_per_request} rows through at once: larger batches could never be answered.",
                remedy="Lower [limits] max_batch_rows or raise rows_per_second.",
            )
        self.log = AuditLog(
            config.database_url,
            signing_key=self.signing_key,
            checkpoint_every=config.audit.checkpoint_every,
            checkpoint_interval_s=config.audit.checkpoint_interval_s,
        )

    def _signing_key(self) -> Any:
        if self.config.audit.signing_key is None:
            return None
        from modelshield.supply_chain.keys import load_private_key

        return load_private_key(self.config.path(self.config.audit.signing_key))

    def _fit_hardenings(self, deployment: Deployment) -> None:
        from modelshield.defenses.output import LabelOnly, Rounding, TopK

        clf = deployment.model.classifier
        k = min(self.config.output.top_k, clf.n_classes)
        made: dict[OutputPolicy, _Hardening] = {
            OutputPolicy.PROBABILITIES: _Hardening(OutputPolicy.PROBABILITIES, None),
            OutputPolicy.TOP_K: _Hardening(OutputPolicy.TOP_K, TopK(k=k).fit(clf)),
            OutputPolicy.ROUNDED: _Hardening(
                OutputPolicy.ROUNDED, Rounding(decimals=self.config.output.decimals).fit(clf)
            ),
            OutputPolicy.LABEL: _Hardening(OutputPolicy.LABEL, LabelOnly().fit(clf)),
        }
        self._hardenings = made

    @property
    def deployment(self) -> Deployment:
        return self._deployment

    def swap(self, deployment: Deployment) -> None:
        """Serve ``deployment`` from now on; requests in flight finish on the one they started with."""
        self.monitor.attach(deployment)  # detectors refitted on the new version, baselines carried over
        with self._swap_lock:
            old = self._deployment
            self._fit_hardenings(deployment)
            self._deployment = deployment
        m = deployment.model
        self.metrics.model_info(m.name, m.version, m.digest)
        self._record_event("model-swap", m.source, reasons=(f"from {old.model.digest} to {m.digest}",))
        log.info("Swapped in %s version %s (%s)", m.name, m.version, m.digest)
        threading.Timer(self.config.server.request_timeout_s + 1, discard, args=(old.model,)).start()

    def _swap_refused(self, reason: str) -> None:
        log.error("A new model version was refused; the current one keeps serving: %s", reason)
        self.metrics.swap_refused()
        self._record_event("model-swap-refused", "watcher", reasons=(reason,), decision="block")

    def _audit_event(self, kind: str, client: str, reasons: tuple[str, ...], decision: str, role: str) -> None:
        self._record_event(kind, client, reasons=reasons, decision=decision, role=role)

    def record_admin(self, kind: str, principal: Principal, detail: str) -> None:
        """Log an admin action (key created or revoked...) with who did it."""
        self._record_event(kind, principal.client, reasons=(detail,), role=principal.role.value)

    def _record_event(
        self, kind: str, client: str, *, reasons: tuple[str, ...], decision: str = "allow", role: str = "system"
    ) -> None:
        record = AuditRecord(
            time=time.time(),
            request_id=uuid.uuid4().hex,
            kind=kind,
            client=client[:200],
            role=role,
            model_digest=self._deployment.model.digest,
            input_sha256="",
            status=0,
            decision=decision,
            reasons=reasons,
            output={},
            latency_ms=0.0,
        )
        try:
            self.log.append(record).result(timeout=10)
        except (AuditLogUnavailable, concurrent.futures.TimeoutError):
            log.error("Could not log the %s event: the audit log is unavailable.", kind)

    def audit_http(self, scope: Scope, status: int) -> None:
        """Log a request to any route but inference and the health checks (not awaited: it releases nothing)."""
        state = scope.get("state", {})
        principal: Principal | None = state.get("principal")
        path = str(scope.get("path", ""))[:200]
        self.metrics.other(status)
        record = AuditRecord(
            time=time.time(),
            request_id=str(state.get("request_id", "")),
            kind="http",
            client=principal.client if principal is not None else "unauthenticated",
            role=principal.role.value if principal is not None else "",
            model_digest=self._deployment.model.digest,
            input_sha256="",
            status=status,
            decision="allow" if 0 < status < 400 else "reject",
            reasons=(f"{str(scope.get('method', ''))[:10]} {path}".replace("\0", ""),),
            output={},
            latency_ms=0.0,
        )
        self.log.append(record)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the gateway closes (the console's session store)."""
        self._on_close.append(callback)

    def ready(self) -> bool:
        """A verified model is loaded and the audit log can be written."""
        return self.log.healthy()

    def close(self) -> None:
        """Stop watching the source, flush the audit log (with a final signed checkpoint) and release the stores;
        called when the server shuts down (SIGTERM, Ctrl-C), and safe to call again."""
        with self._swap_lock:
            if self._closed:
                return
            self._closed = True
        self.watcher.close()
        closing = getattr(self._deployment.model.classifier, "close", None)
        if callable(closing):  # an upstream's HTTP client
            closing()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.monitor.close()
        for callback in self._on_close:
            callback()
        self.log.close()
        self.limiter.close()

    # -- the request pipeline ----------------------------------------------------------------------------------------
    def authenticate(self, request: Request, permission: Permission) -> Principal:
        try:
            principal = self.auth.authenticate(request.headers.get("authorization"), request.headers.get("x-api-key"))
        except AuthenticationError as exc:
            raise Refusal(
                401, "unauthenticated", str(exc.message), headers={"WWW-Authenticate": 'Bearer realm="modelshield"'}
            ) from None
        except KeyStoreError:
            raise Refusal(
                503,
                "keys-unavailable",
                "The gateway cannot check credentials now; retry shortly.",
                headers={"Retry-After": "1"},
            ) from None
        if not principal.role.allows(permission):
            raise Refusal(
                403,
                "forbidden",
                f"The {principal.role.value} role may not do this; a key with another role is needed.",
                principal=principal,
            )
        return principal

    def policy_for(self, principal: Principal) -> _Hardening:
        out = self.config.output
        policy = out.clients.get(principal.client) or out.roles.get(principal.role.value) or out.default
        return self._hardenings[policy]

    def infer(self, principal: Principal, name: str, body: bytes, deployment: Deployment, source: str = "") -> _Outcome:
        """Steps 3 to 7 of the module docstring; raises :class:`Refusal`."""
        model = deployment.model
        if name != model.name:
            raise Refusal(
                404, "unknown-model", f"No model {name!r} is served here; this gateway serves {model.name!r}."
            )
        try:
            request = InferenceRequest.model_validate_json(body)
        except ValidationError as exc:
            raise Refusal(422, "protocol", _pydantic_message(exc)) from None
        limits = self.config.limits
        try:
            x = decode_inputs(request, model.classifier.input_shape, max_rows=limits.max_batch_rows)
        except ProtocolError as exc:
            raise Refusal(422, "protocol", str(exc.message)) from None
        n = len(x)
        if n > limits.max_batch_rows:
            raise Refusal(
                413, "batch-too-large", f"The batch has {n} rows; at most {limits.max_batch_rows} per request."
            )
        sanctions = self.monitor.sanctions(principal.client)
        if sanctions.suspended:
            raise Refusal(
                403,
                "suspended",
                "This client's access is suspended by the model owner's security policy; contact the owner.",
                logged="; ".join(sanctions.reasons),
            )
        policy = self._hardenings[OutputPolicy.LABEL] if sanctions.label_only else self.policy_for(principal)
        wanted = [o.name for o in request.outputs] if request.outputs else []
        allowed = ("label",) if policy.policy is OutputPolicy.LABEL else ("probabilities", "label")
        unknown = [w for w in wanted if w not in allowed]
        if unknown:
            raise Refusal(
                422,
                "protocol",
                f"outputs: {unknown[0]!r} is not available to this client; ask for {' or '.join(allowed)}.",
            )
        try:
            decision = self.limiter.check(principal.client, n, rows_per_day=principal.rows_per_day)
        except LimitsUnavailable:
            raise Refusal(503, "limits-unavailable", "The gateway cannot check limits now; retry shortly.") from None
        if not decision.allowed:
            raise Refusal(
                429,
                "rate-limited",
                f"Limit reached ({decision.reason}); retry after {decision.retry_after_s} s.",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        if sanctions.requests_per_second is not None:
            self._throttle(principal, n, sanctions.requests_per_second)
        if deployment.schema is not None:
            try:
                deployment.schema.check(x)
            except InvalidRequestInputError as exc:
                raise Refusal(422, "invalid-input", str(exc.message)) from None
        if sanctions.patterns:
            from modelshield.gateway.response import pattern_hits

            hits = pattern_hits(x, sanctions.patterns, self.monitor.scale(x.shape[1:]))
            if hits.any():
                raise Refusal(
                    403,
                    "blocked-pattern",
                    "The request was refused by the gateway's usage checks.",
                    logged=f"rows {np.flatnonzero(hits)[:10].tolist()} match a blocked pattern",
                )
        return self._predict(principal, request, x, deployment, policy, wanted, source)

    def _throttle(self, principal: Principal, rows: int, requests_per_second: float) -> None:
        with self._throttles_lock:
            limiter = self._throttles.get(requests_per_second)
            if limiter is None:
                settings = LimitSettings(
                    requests_per_second=requests_per_second,
                    rows_per_second=max(requests_per_second * self.config.limits.max_batch_rows, 1.0),
                    rows_per_day=10**12,
                    fail_open=self.config.limits.on_storage_error == "allow",
                )
                limiter = Limiter(settings, self.config.store.redis or "memory://", prefix="modelshield-throttle")
                self._throttles[requests_per_second] = limiter
        try:
            decision = limiter.check(principal.client, rows)
        except LimitsUnavailable:
            raise Refusal(503, "limits-unavailable", "The gateway cannot check limits now; retry shortly.") from None
        if not decision.allowed:
            raise Refusal(
                429,
                "throttled",
                f"This client is throttled by the owner's security policy; retry after {decision.retry_after_s} s.",
                headers={"Retry-After": str(decision.retry_after_s)},
            )

    def _predict(
        self,
        principal: Principal,
        request: InferenceRequest,
        x: np.ndarray,
        deployment: Deployment,
        policy: _Hardening,
        wanted: list[str],
        source: str = "",
    ) -> _Outcome:
        from modelshield.defenses.interface import GuardRequest

        x32 = x.astype(np.float32)
        reasons, flagged = self._guard(deployment.input_guards, GuardRequest(principal.client, x32), "input checks")
        try:
            p = np.asarray(deployment.model.classifier.predict_proba(x32), dtype=np.float64)
        except ModelShieldError as exc:
            raise Refusal(502, "model-error", "The model failed to answer this request.", logged=str(exc)) from None
        if deployment.output_guards:
            request_p = GuardRequest(principal.client, x32, probabilities=p)
            more, flagged_out = self._guard(deployment.output_guards, request_p, "usage checks")
            reasons, flagged = reasons + more, flagged or flagged_out
        watched = self.monitor.after(
            principal.client,
            x32,
            p,
            deployment,
            key_id=principal.key_id,
            source=source,
            request_id=request.id,
        )
        released = watched.probabilities  # the watermark's wrong labels on its keyed fraction of rows
        if policy.hardening is not None:
            released = policy.hardening.harden(released, x32, client_id=principal.client)
        labels = watched.probabilities.argmax(axis=1)
        if not wanted:
            wanted = ["label"] if policy.policy is OutputPolicy.LABEL else ["probabilities"]
        outputs = [encode_output(w, labels if w == "label" else released) for w in wanted]
        model = deployment.model
        body: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.version,
            "id": request.id,
            "parameters": {"model_digest": model.digest},
            "outputs": outputs,
        }
        summary = {
            "rows": len(x),
            "policy": policy.policy.value,
            "labels": labels[:_MAX_LABELS_LOGGED].tolist(),
        }
        if watched.marked:
            summary["watermarked"] = watched.marked
        return _Outcome(body, "flag" if flagged else "allow", tuple(reasons), summary)

    async def infer_async(self, request: Request, name: str, body: bytes, started: float) -> Response:
        """Run :meth:`handle_infer` on the request pool; answer 504 if it takes longer than ``request_timeout_s``
        (the work goes on, and its audit record then says 504 too: see :class:`_Ticket`)."""
        ticket = _Ticket()
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, self.handle_infer, request, name, body, started, ticket
        )
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.config.server.request_timeout_s)
        except TimeoutError:
            if not ticket.abandon():  # it is already committing its answer: wait for it
                return await future
            self.metrics.request(ticket.client, 504, time.perf_counter() - started, "timeout")
            return JSONResponse({"error": "The model did not answer in time; retry later."}, status_code=504)

    def handle_infer(
        self, request: Request, name: str, body: bytes, started: float, ticket: _Ticket | None = None
    ) -> Response:
        """One inference request, start to end: the response to send (run in a worker thread)."""
        ticket = ticket or _Ticket()
        request_id = str(request.scope.get("state", {}).get("request_id", ""))
        request.scope["state"]["audited"] = True  # logged below, with the decision (and awaited for a 200)
        deployment = self._deployment
        principal: Principal | None = None
        x_digest = hashlib.sha256(body).hexdigest()
        try:
            principal = self.authenticate(request, Permission.INFER)
            ticket.client = principal.client
            source = request.client.host if request.client is not None else ""
            outcome = self.infer(principal, name, body, deployment, source)
        except Refusal as refusal:
            if principal is not None:
                enforced = refusal.reason in {"suspended", "throttled", "blocked-pattern"}
                self.monitor.rejected(principal.client, refusal.status, enforced=enforced)
            principal = principal or refusal.principal
            client = principal.client if principal is not None else "unauthenticated"
            status, reasons = refusal.status, (refusal.logged,)
            if not ticket.claim():
                status, reasons = 504, (f"answered after request_timeout_s; would have been {status}",)
            self._log_request(
                request_id, principal, deployment, x_digest, status, "reject", reasons, {}, started
            )  # not awaited: a refusal releases nothing
            self.metrics.request(client, refusal.status, time.perf_counter() - started, refusal.reason)
            return JSONResponse({"error": refusal.message}, status_code=refusal.status, headers=refusal.headers)
        if not ticket.claim():  # the client was already told 504: the record says so, and nothing is released
            self._log_request(
                request_id,
                principal,
                deployment,
                x_digest,
                504,
                "reject",
                ("the model answered after request_timeout_s",),
                {},
                started,
            )
            return JSONResponse({"error": "timeout"}, status_code=504)
        committed = self._log_request(
            request_id,
            principal,
            deployment,
            x_digest,
            200,
            outcome.decision,
            outcome.reasons,
            outcome.summary,
            started,
        )
        try:
            committed.result(timeout=self.config.server.request_timeout_s)
        except (AuditLogUnavailable, concurrent.futures.TimeoutError):
            self.metrics.request(principal.client, 503, time.perf_counter() - started, "log-unavailable")
            return JSONResponse(
                {"error": "The gateway cannot record requests now, so it answers none; retry shortly."},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        self.metrics.request(principal.client, 200, time.perf_counter() - started)
        model = deployment.model
        return Response(
            json.dumps(outcome.body, separators=(",", ":")),
            media_type="application/json",
            headers={"X-Model-Digest": model.digest, "X-Model-Version": model.version},
        )

    def _log_request(
        self,
        request_id: str,
        principal: Principal | None,
        deployment: Deployment,
        input_sha256: str,
        status: int,
        decision: str,
        reasons: tuple[str, ...],
        summary: dict[str, Any],
        started: float,
    ) -> concurrent.futures.Future[int]:
        record = AuditRecord(
            time=time.time(),
            request_id=request_id,
            kind="infer",
            client=principal.client if principal is not None else "unauthenticated",
            role=principal.role.value if principal is not None else "",
            model_digest=deployment.model.digest,
            input_sha256=input_sha256,
            status=status,
            decision=decision,
            reasons=reasons,
            output=summary,
            latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
        )
        return self.log.append(record)

    def _guard(
        self, guards: tuple[tuple[InferenceGuard, GuardMode], ...], request: GuardRequest, checks: str
    ) -> tuple[list[str], bool]:
        """Run ``guards`` on ``request``: their reasons and whether any raised an alarm; :class:`Refusal` (403) from
        one in block mode that did."""
        from modelshield.defenses.interface import Action

        reasons: list[str] = []
        flagged = False
        for guard, mode in guards:
            verdict = guard.inspect(request)
            self.metrics.guard(guard.name, verdict.action.value)
            if verdict.action is Action.ALLOW:
                continue
            flagged = True
            reasons.extend(verdict.reasons)
            if mode is GuardMode.BLOCK:
                raise Refusal(
                    403, "guard-block", f"The request was refused by the gateway's {checks}.", logged="; ".join(reasons)
                )
        return reasons, flagged

    # -- the app -----------------------------------------------------------------------------------------------------
    def _build_app(self) -> ASGIApp:
        from modelshield.gateway.routes import add_routes

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            yield
            await run_in_threadpool(self.close)  # on shutdown: the log's last records and its final checkpoint

        app = FastAPI(
            title="modelshield gateway",
            version=__version__,
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            lifespan=lifespan,
        )
        app.state.gateway = self
        console = self.config.console.enabled

        @app.exception_handler(StarletteHTTPException)
        async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
            message = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, "Request refused.")
            if console and request.url.path.startswith("/console/"):
                from modelshield.gateway.console import error_page

                return error_page(exc.status_code, message)
            return JSONResponse({"error": message}, status_code=exc.status_code)

        @app.exception_handler(RequestValidationError)
        async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
            first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
            where = ".".join(str(p) for p in first["loc"])
            return JSONResponse({"error": f"{where}: {first['msg']}"}, status_code=422)

        @app.exception_handler(Exception)
        async def _internal_error(request: Request, exc: Exception) -> Response:
            request_id = request.scope.get("state", {}).get("request_id", "")
            log.error("Internal error in request %s", request_id, exc_info=exc)
            return JSONResponse(
                {"error": f"Internal error; the gateway's log has the details (request {request_id})."},
                status_code=500,
            )

        add_routes(app, self)
        if console:
            from modelshield.gateway.console import add_console

            add_console(app, self)
        self.fastapi = app
        return _Envelope(
            app,
            max_body=self.config.server.max_body_bytes,
            tls=self.config.server.ssl_certfile is not None,
            on_done=self.audit_http,
        )


def _pydantic_message(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def create_app(config: GatewayConfig) -> ASGIApp:
    """The ASGI app for ``config`` (a :class:`Gateway` built and kept on ``app.state``)."""
    return Gateway(config).app
