"""The gateway's HTTP routes: the Open Inference Protocol v2, ``/metrics``, and the admin API under its prefix.

Every route but the two health checks authenticates first. The admin API:

- ``GET PREFIX/status`` (analyst): the model served, its digest and source, the audit log's state;
- ``GET PREFIX/log?after=SEQ&since=UNIX&limit=N`` (analyst): audit records as JSON, in order, a page at a time;
- ``GET PREFIX/log/verify`` (analyst): the hash chain and signed checkpoints, checked now;
- ``GET PREFIX/keys``, ``POST PREFIX/keys``, ``DELETE PREFIX/keys/{key_id}`` (admin): list, create (the secret is
  in this one response only), revoke;
- ``POST PREFIX/model/reload`` (admin): check the model source now instead of at the next poll;
- ``GET PREFIX/alerts?since=UNIX&client=NAME&limit=N`` (analyst): the monitors' alerts, in order;
- ``GET PREFIX/incidents?status=open&limit=N`` (analyst): incidents, highest risk first; ``GET
  PREFIX/incidents/{id}`` with its alerts; ``POST PREFIX/incidents/{id}/verdict`` (analyst): ``{"verdict":
  "true-positive" | "false-positive", "note": "...", "suppress_days": 7}``;
- ``GET PREFIX/review?status=pending`` (analyst): the response actions; ``GET PREFIX/review/{id}``;
  ``POST PREFIX/review/{id}/approve``, ``.../deny``, ``.../lift`` (admin);
- ``GET PREFIX/drift`` (analyst): the latest drift window against the reference.

Clients send the true labels of earlier answers to ``POST /v2/models/{name}/feedback`` (``{"id": "<the request's
id>", "labels": [...]}``, one per row): the drift monitor's accuracy over recent labelled answers.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from modelshield.errors import ModelShieldError
from modelshield.gateway.identity import KeyInfo, Permission, Role
from modelshield.gateway.metrics import CONTENT_TYPE_LATEST
from modelshield.gateway.protocol import InferenceRequest
from modelshield.monitoring.alerts import Verdict

if TYPE_CHECKING:
    from modelshield.gateway.app import Gateway

__all__ = ["FeedbackRequest", "KeyRequest", "VerdictRequest", "add_routes"]

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
    }
}


class KeyRequest(BaseModel):
    """``POST PREFIX/keys``: a new API key for a client."""

    model_config = ConfigDict(extra="forbid")
    client: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")]
    role: Role = Role.CLIENT
    expires_days: Annotated[float, Field(gt=0, le=3650)] | None = None
    rows_per_day: Annotated[int, Field(ge=1)] | None = None


class VerdictRequest(BaseModel):
    """``POST PREFIX/incidents/{id}/verdict``: an analyst's judgement."""

    model_config = ConfigDict(extra="forbid")
    verdict: Verdict
    note: Annotated[str, Field(max_length=2000)] = ""
    suppress_days: Annotated[float, Field(gt=0, le=366)] | None = None


class FeedbackRequest(BaseModel):
    """``POST /v2/models/{name}/feedback``: the true labels of an earlier request's rows."""

    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=200)]
    labels: Annotated[list[Annotated[int, Field(ge=0, le=1_000_000)]], Field(min_length=1, max_length=100_000)]


def _key_dict(info: KeyInfo) -> dict[str, Any]:
    """A key as the admin API shows it: never the secret or its digest."""
    return {**dataclasses.asdict(info), "role": info.role.value, "status": info.status(time.time())}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def add_routes(app: FastAPI, gateway: Gateway) -> None:  # noqa: PLR0915 - one closure per route
    from modelshield.gateway.app import Refusal

    async def principal_or_error(request: Request, permission: Permission) -> Any:
        try:
            principal = await run_in_threadpool(gateway.authenticate, request, permission)
        except Refusal as refusal:
            if refusal.principal is not None:
                request.state.principal = refusal.principal  # known but not allowed: logged under its name
            return _error(refusal.status, refusal.message, refusal.headers)
        request.state.principal = principal  # the audit record of this request names it
        return principal

    # -- Open Inference Protocol v2 ----------------------------------------------------------------------------------
    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = gateway.ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata(request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_METADATA)
        if isinstance(who, Response):
            return who
        return {"name": "modelshield-gateway", "version": gateway.app_version, "extensions": []}

    def _model_or_404(name: str) -> Any:
        model = gateway.deployment.model
        if name != model.name:
            return _error(404, f"No model {name!r} is served here.")
        return model

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str, request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_METADATA)
        if isinstance(who, Response):
            return who
        model = _model_or_404(name)
        if isinstance(model, Response):
            return model
        clf = model.classifier
        label_only = gateway.policy_for(who).policy.value == "label"
        output = (
            {"name": "label", "datatype": "INT64", "shape": [-1]}
            if label_only
            else {"name": "probabilities", "datatype": "FP32", "shape": [-1, clf.n_classes]}
        )
        meta: dict[str, Any] = {
            "name": model.name,
            "versions": [model.version],
            "platform": "modelshield-gateway",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *clf.input_shape]}],
            "outputs": [output],
            "parameters": {"model_digest": model.digest},
        }
        if model.classes:
            meta["parameters"]["classes"] = list(model.classes)
        return JSONResponse(meta, headers={"X-Model-Digest": model.digest, "X-Model-Version": model.version})

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str, request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_METADATA)
        if isinstance(who, Response):
            return who
        model = _model_or_404(name)
        if isinstance(model, Response):
            return model
        return {"name": model.name, "ready": gateway.ready()}

    @app.post("/v2/models/{name}/infer", openapi_extra=_INFER_BODY)
    async def infer(name: str, request: Request) -> Response:
        started = time.perf_counter()
        body = await request.body()
        return await gateway.infer_async(request, name, body, started)

    # -- metrics -----------------------------------------------------------------------------------------------------
    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        return Response(gateway.metrics.render(gateway.monitor.prometheus()), media_type=CONTENT_TYPE_LATEST)

    # -- admin -------------------------------------------------------------------------------------------------------
    prefix = gateway.config.server.admin_prefix

    @app.get(f"{prefix}/status")
    async def status(request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        model = gateway.deployment.model
        return {
            "model": {
                "name": model.name,
                "version": model.version,
                "digest": model.digest,
                "source": model.source,
                "signer": model.signer,
            },
            "audit_log": {"healthy": gateway.log.healthy()},
            "limits": {"healthy": gateway.limiter.healthy()},
        }

    @app.get(f"{prefix}/log")
    async def read_log(
        request: Request,
        after: Annotated[
            int, Query(ge=0, le=(1 << 62), description="Records after this sequence number (paging).")
        ] = 0,
        since: Annotated[float | None, Query(ge=0, description="Records at or after this Unix time.")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        from modelshield.gateway.auditlog import AuditLogUnavailable, read_records

        url = gateway.config.database_url
        try:
            records = await run_in_threadpool(lambda: read_records(url, after=after, since=since, limit=limit))
        except AuditLogUnavailable:
            return _error(503, "The audit log cannot be read now; retry shortly.")
        return {"records": records, "next_after": records[-1]["seq"] if records else after}

    @app.get(f"{prefix}/log/verify")
    async def verify(request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        from modelshield.gateway.auditlog import LogTamperedError, verify_log

        key = gateway.signing_key.public() if gateway.signing_key is not None else None
        try:
            result = await run_in_threadpool(lambda: verify_log(gateway.config.database_url, key))
        except LogTamperedError as exc:
            return JSONResponse({"verified": False, "problem": exc.message}, status_code=200)
        return {"verified": True, **dataclasses.asdict(result)}

    @app.get(f"{prefix}/keys")
    async def list_keys(request: Request) -> Any:
        who = await principal_or_error(request, Permission.ADMIN)
        if isinstance(who, Response):
            return who
        keys = await run_in_threadpool(gateway.keys.list)
        return {"keys": [_key_dict(k) for k in keys]}

    @app.post(f"{prefix}/keys")
    async def create_key(request: Request) -> Any:
        who = await principal_or_error(request, Permission.ADMIN)
        if isinstance(who, Response):
            return who
        try:
            wanted = KeyRequest.model_validate_json(await request.body())
        except ValueError as exc:
            return _error(422, str(exc).splitlines()[0])

        def create() -> Any:
            return gateway.keys.create(
                wanted.client, wanted.role, expires_days=wanted.expires_days, rows_per_day=wanted.rows_per_day
            )

        secret, info = await run_in_threadpool(create)
        await run_in_threadpool(gateway.auth.refresh)  # in force here at once; elsewhere within key_refresh_s
        gateway.record_admin("key-create", who, f"{info.key_id} for {info.client} ({info.role.value})")
        return JSONResponse({"key": secret, **_key_dict(info)}, status_code=201)

    @app.delete(f"{prefix}/keys/{{key_id}}")
    async def revoke_key(key_id: str, request: Request) -> Any:
        who = await principal_or_error(request, Permission.ADMIN)
        if isinstance(who, Response):
            return who
        try:
            info = await run_in_threadpool(gateway.keys.revoke, key_id)
        except ModelShieldError as exc:
            return _error(404, exc.message)
        await run_in_threadpool(gateway.auth.refresh)
        gateway.record_admin("key-revoke", who, f"{info.key_id} of {info.client}")
        return _key_dict(info)

    @app.post(f"{prefix}/model/reload")
    async def reload_model(request: Request) -> Any:
        who = await principal_or_error(request, Permission.ADMIN)
        if isinstance(who, Response):
            return who
        swapped = await run_in_threadpool(gateway.watcher.check_now)
        model = gateway.deployment.model
        return {"swapped": swapped, "version": model.version, "digest": model.digest}

    # -- monitoring --------------------------------------------------------------------------------------------------
    @app.post("/v2/models/{name}/feedback")
    async def feedback(name: str, request: Request) -> Any:
        who = await principal_or_error(request, Permission.INFER)
        if isinstance(who, Response):
            return who
        if name != gateway.deployment.model.name:
            return _error(404, f"No model {name!r} is served here.")
        try:
            wanted = FeedbackRequest.model_validate_json(await request.body())
        except ValueError as exc:
            return _error(422, str(exc).splitlines()[0])
        if max(wanted.labels) >= gateway.deployment.model.classifier.n_classes:
            return _error(
                422, f"labels: each must be a class index below {gateway.deployment.model.classifier.n_classes}."
            )
        taken = gateway.monitor.feedback(who.client, wanted.id, wanted.labels)
        if not taken:
            return _error(
                404,
                "No recent answer of yours has this id and this many rows (too old, already labelled, or the "
                "drift monitor is off).",
            )
        return {"accepted": len(wanted.labels)}

    @app.get(f"{prefix}/alerts")
    async def list_alerts(
        request: Request,
        since: Annotated[float | None, Query(ge=0, description="Alerts raised after this Unix time.")] = None,
        client: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        alerts = await run_in_threadpool(lambda: gateway.monitor.alerts.alerts(since=since, actor=client, limit=limit))
        return {"alerts": [a.to_dict() for a in alerts]}

    @app.get(f"{prefix}/incidents")
    async def list_incidents(
        request: Request,
        status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        incidents = await run_in_threadpool(lambda: gateway.monitor.alerts.incidents(status=status, limit=limit))
        return {"incidents": [i.to_dict() for i in incidents]}

    @app.get(f"{prefix}/incidents/{{incident_id}}")
    async def show_incident(incident_id: Annotated[int, Path(ge=1, le=1 << 62)], request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        try:
            incident, alerts = await run_in_threadpool(gateway.monitor.alerts.incident, incident_id)
        except ModelShieldError as exc:
            return _error(404, exc.message)
        return {**incident.to_dict(), "alert_list": [a.to_dict() for a in alerts]}

    @app.post(f"{prefix}/incidents/{{incident_id}}/verdict")
    async def incident_verdict(incident_id: Annotated[int, Path(ge=1, le=1 << 62)], request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        try:
            wanted = VerdictRequest.model_validate_json(await request.body())
        except ValueError as exc:
            return _error(422, str(exc).splitlines()[0])
        suppress_s = None if wanted.suppress_days is None else wanted.suppress_days * 86_400.0

        def judge() -> Any:
            return gateway.monitor.alerts.set_verdict(
                incident_id, wanted.verdict, analyst=who.client, note=wanted.note, suppress_s=suppress_s
            )

        try:
            incident = await run_in_threadpool(judge)
        except ModelShieldError as exc:
            return _error(404, exc.message)
        gateway.record_admin("verdict", who, f"incident {incident.id}: {wanted.verdict.value}")
        return incident.to_dict()

    @app.get(f"{prefix}/review")
    async def list_actions(
        request: Request,
        status: Annotated[str | None, Query(pattern="^(pending|active|approved|denied|lifted)$")] = "pending",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        actions = await run_in_threadpool(lambda: gateway.monitor.actions.actions(status=status, limit=limit))
        return {"actions": [a.to_dict() for a in actions]}

    @app.get(f"{prefix}/review/{{action_id}}")
    async def show_action(action_id: Annotated[int, Path(ge=1, le=1 << 62)], request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        try:
            action = await run_in_threadpool(gateway.monitor.actions.get, action_id)
        except ModelShieldError as exc:
            return _error(404, exc.message)
        return action.to_dict()

    @app.post(f"{prefix}/review/{{action_id}}/{{decision}}")
    async def decide_action(
        action_id: Annotated[int, Path(ge=1, le=1 << 62)],
        decision: Annotated[str, Path(pattern="^(approve|deny|lift)$")],
        request: Request,
    ) -> Any:
        who = await principal_or_error(request, Permission.ADMIN)
        if isinstance(who, Response):
            return who
        try:
            action = await run_in_threadpool(
                gateway.monitor.decide, action_id, decision, who.client, now=gateway.clock()
            )
        except ModelShieldError as exc:
            return _error(409, exc.message)
        return action.to_dict()

    @app.get(f"{prefix}/drift")
    async def drift(request: Request) -> Any:
        who = await principal_or_error(request, Permission.READ_LOG)
        if isinstance(who, Response):
            return who
        result = gateway.monitor.last_drift
        return {"drift": None if result is None else result.to_dict()}

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original_openapi()
        defs = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.pop("$defs", {}))
        components["InferenceRequest"] = defs
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
