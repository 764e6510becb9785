"""Benchmark: what the security gateway costs per request, against bare FastAPI and MLServer, in one run.

    .venv/bin/python benchmarks/gateway/bench_gateway.py --out /tmp/bench_gateway [--quick]
        [--mlserver-python /root/.cache/modelshield-ci/mlserver-1.7.1/bin/python] [--no-pg]

One model for every server: scikit-learn's LogisticRegression trained on the bundled phishing data (9 features, 2
classes), saved once as skops (signed, for the gateway) and as joblib (for the other two). The servers, each under
uvicorn with one worker and pinned to one core (``taskset``), the load generator pinned to the other:

- ``bare``: ``bare_app.py``, the Open Inference Protocol v2 infer route in plain FastAPI calling ``predict_proba``;
- ``mlserver``: MLServer with mlserver-sklearn (in its own virtual environment; skipped when it is absent), with
  ``parallel_workers = 0`` (inference in the server process: its fastest single-core setting) and its access log,
  metrics endpoint and debug mode off;
- ``gateway``: ``modelshield serve`` with everything on: an API key, limits (set high enough never to refuse), input
  validation against the schema of the training data, the output policy ``rounded`` for the client role, the
  extraction monitor in ``log`` mode and the signed, hash-chained audit log in SQLite, limits in memory;
- ``gateway-pg``: the same with the audit log and keys in PostgreSQL and the limits in Redis (``--no-pg`` skips it);

For each server, in turn: a warm-up (wrk), then the latency at a constant 200 requests/s from ``openloop.py`` (open
loop: latency from the scheduled send time, so a stall is not hidden by coordinated omission), then the saturation
throughput from wrk (closed loop, 16 connections). Every request is a one-row batch, the rows cycling through 1,000
rows of the data set (so the extraction monitor sees a natural stream; every one passes validation). Each server is
measured ``--rounds`` times, the servers taking turns, and the median round is reported.

Then each layer's own cost, in process, with ``time.perf_counter_ns`` around every call (the gateway's own
components from ``Gateway(load_config(...))``): authentication, the limiter (memory and Redis), the protocol
parsing and decoding, the schema check, the model, the extraction monitor, the output policy, the response
encoding, the metrics, the audit log's append-to-commit (SQLite and PostgreSQL) and the thread hand-offs.

Writes ``results.json`` and ``results.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_MLSERVER = Path("/root/.cache/modelshield-ci/mlserver-1.7.1/bin/python")
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"
MODEL_NAME = "phishing-lr"
CLIENT = "bench-client"
N_ROWS = 1000
TARGET_RATE = 200.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the model, its data, the configurations ------------------------------------------------------------------------
@dataclass
class Site:
    root: Path
    joblib_model: Path
    mlserver_dir: Path
    configs: dict[str, Path]
    keys: dict[str, str]  # server name -> API key secret
    bodies: list[str]  # the gateway's and bare FastAPI's request bodies
    mlserver_bodies: list[str]  # the same rows, asking MLServer for predict_proba
    pg_database: str | None = None
    rows: Any = None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _create_pg_database() -> str | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"modelshield_bench_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        say(f"PostgreSQL is not reachable ({exc.orig}); the gateway-pg variant is skipped")
        return None
    finally:
        admin.dispose()
    return name


def _drop_pg_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _redis_ok() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def build_site(root: Path, *, with_pg: bool) -> Site:  # noqa: PLR0915 - one linear recipe
    import joblib
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from modelshield.data import load_bundled
    from modelshield.gateway.config import load_config
    from modelshield.gateway.identity import KeyStore, Role
    from modelshield.supply_chain.keys import generate_keypair, load_private_key, write_keypair
    from modelshield.supply_chain.signing import sign_model

    data = load_bundled("phishing")
    x = data.x.reshape(len(data.x), -1).astype(np.float64)
    labels = np.asarray(data.label_names)[data.y]
    model = LogisticRegression(max_iter=500).fit(x, labels)
    skops_path = root / "phishing-lr.skops"
    skops.io.dump(model, skops_path)
    joblib_path = root / "phishing-lr.joblib"
    joblib.dump(model, joblib_path)
    frame = pd.DataFrame(x, columns=list(data.schema.names))
    frame["label"] = labels
    frame.to_csv(root / "train.csv", index=False)
    private, _ = write_keypair(generate_keypair("ed25519"), root / "keys", name="publisher")
    write_keypair(generate_keypair("ed25519"), root / "keys", name="gateway")
    sign_model(skops_path, load_private_key(private), root / "phishing-lr.skops.sig")

    base: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1"},
        "model": {
            "file": str(skops_path),
            "public_key": str(root / "keys" / "publisher.pub"),
            "reference": str(root / "train.csv"),
            "name": MODEL_NAME,
        },
        "store": {"database": f"sqlite:///{root / 'gateway.db'}"},
        "auth": {"allow_anonymous": False},
        "limits": {"requests_per_second": 1e6, "rows_per_second": 1e9, "rows_per_day": 10**12},
        "validation": {"enabled": True},
        "output": {"default": "probabilities", "decimals": 2, "roles": {"client": "rounded"}},
        "guards": {"extraction_monitor": "log", "adversarial_detector": "off"},
        "audit": {"signing_key": "keys/gateway.key", "checkpoint_every": 1000},
    }
    configs = {"gateway": _write_config(root / "gateway.toml", base)}
    pg_database = None
    if with_pg:
        if not _redis_ok():
            say("Redis is not reachable; the gateway-pg variant is skipped")
        else:
            pg_database = _create_pg_database()
        if pg_database is not None:
            pg = {k: dict(v) for k, v in base.items()}
            pg["store"] = {
                "database": f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_database}",
                "redis": REDIS_URL,
            }
            configs["gateway-pg"] = _write_config(root / "gateway-pg.toml", pg)
    keys = {}
    for name, path in configs.items():
        store = KeyStore(load_config(path).database_url)
        client = f"{CLIENT}-{secrets.token_hex(3)}"  # fresh limits and monitor state on Redis/PostgreSQL each run
        secret, _ = store.create(client, Role.CLIENT)
        store.close()
        keys[name] = secret

    # MLServer: its model repository (a joblib file is what mlserver-sklearn loads).
    ml = root / "mlserver"
    (ml / MODEL_NAME).mkdir(parents=True)
    shutil.copy(joblib_path, ml / MODEL_NAME / "model.joblib")
    (ml / MODEL_NAME / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )

    rows = x[:N_ROWS]
    bodies, ml_bodies = [], []
    for i, row in enumerate(rows):
        values = [float(v) for v in row]
        tensor = {"name": "input", "shape": [1, len(values)], "datatype": "FP64", "data": values}
        bodies.append(json.dumps({"id": str(i), "inputs": [tensor]}, separators=(",", ":")))
        ml_bodies.append(
            json.dumps(
                {"id": str(i), "inputs": [tensor], "outputs": [{"name": "predict_proba"}]}, separators=(",", ":")
            )
        )
    return Site(root, joblib_path, ml, configs, keys, bodies, ml_bodies, pg_database, rows)


# -- the servers ------------------------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    bodies: list[str]
    headers: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/{MODEL_NAME}/infer"

    def start(self, log_dir: Path, timeout_s: float = 180.0) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env={**os.environ, **self.env}, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        ready = f"http://127.0.0.1:{self.port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(ready, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f} s; see {self.log_path}")

    def check(self) -> str:
        """One request; its response body (raises unless 200)."""
        req = urllib.request.Request(self.url, data=self.bodies[0].encode(), method="POST")  # noqa: S310
        req.add_header("Content-Type", "application/json")
        for h in self.headers:
            k, v = h.split(":", 1)
            req.add_header(k.strip(), v.strip())
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            if r.status != 200:
                raise RuntimeError(f"{self.name} answered {r.status}")
            return str(r.read().decode())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_servers(site: Site, mlserver_python: Path | None, pin: list[str]) -> list[Server]:
    servers = [
        Server(
            "bare",
            [
                *pin,
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--app-dir",
                str(HERE),
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--workers",
                "1",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {"BENCH_MODEL": str(site.joblib_model), "BENCH_MODEL_NAME": MODEL_NAME},
            site.root,
            0,
            site.bodies,
        )
    ]
    if mlserver_python is not None:
        servers.append(
            Server(
                "mlserver",
                [*pin, str(mlserver_python.parent / "mlserver"), "start", str(site.mlserver_dir)],
                {},
                site.mlserver_dir,
                0,
                site.mlserver_bodies,
            )
        )
    for name, config in site.configs.items():
        servers.append(
            Server(
                name,
                [*pin, str(VENV_BIN / "modelshield"), "serve", "--config", str(config), "--port", "{port}"],
                {},
                site.root,
                0,
                site.bodies,
                [f"Authorization: Bearer {site.keys[name]}"],
            )
        )
    return servers


def assign_port(server: Server, site: Site) -> None:
    server.port = free_port()
    if "--port" in server.argv:  # a new port each round
        server.argv[server.argv.index("--port") + 1] = str(server.port)
    if server.name == "mlserver":
        (site.mlserver_dir / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": server.port,
                    "grpc_port": free_port(),
                    "metrics_endpoint": None,
                    "parallel_workers": 0,
                    "debug": False,
                    "load_models_at_startup": True,
                }
            )
        )


# -- load generators --------------------------------------------------------------------------------------------------
_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  local s = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,"
    .. "\\"status\\":%d,\\"timeout\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}}\\n",
    summary.requests, summary.duration, s.connect, s.read, s.write, s.status, s.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk(server: Server, work: Path, *, seconds: float, connections: int, pin: list[str]) -> dict[str, Any]:
    bodies = work / f"{server.name}.bodies.txt"
    bodies.write_text("\n".join(server.bodies) + "\n", encoding="utf-8")
    headers = "\n".join(
        f'wrk.headers["{h.split(":", 1)[0].strip()}"] = "{h.split(":", 1)[1].strip()}"' for h in server.headers
    )
    script = work / f"{server.name}.lua"
    script.write_text(_WRK_SCRIPT.format(headers=headers, bodies=bodies), encoding="utf-8")
    argv = [*pin, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), server.url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["connections"] = connections
    return result


def openloop(server: Server, work: Path, *, rate: float, seconds: float, connections: int, pin: list[str]) -> Any:
    bodies = work / f"{server.name}.bodies.json"
    bodies.write_text(json.dumps(server.bodies), encoding="utf-8")
    argv = [*pin, sys.executable, str(HERE / "openloop.py"), "--url", server.url, "--bodies", str(bodies)]
    argv += ["--rate", str(rate), "--duration", str(seconds), "--connections", str(connections)]
    for h in server.headers:
        argv += ["--header", h]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- per-layer costs, in process --------------------------------------------------------------------------------------
def _stats(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    n = len(ordered)
    return {
        "n": n,
        "median_us": ordered[n // 2] / 1000.0,
        "p99_us": ordered[min(n - 1, int(0.99 * n))] / 1000.0,
        "mean_us": sum(ordered) / n / 1000.0,
    }


def timed_calls(fn: Callable[[int], object], n: int, warm: int = 100) -> dict[str, float]:
    """Time each of ``n`` calls ``fn(i)`` on its own (after ``warm`` untimed ones)."""
    for i in range(warm):
        fn(i)
    clock = time.perf_counter_ns
    ns = []
    for i in range(n):
        t0 = clock()
        fn(i)
        ns.append(clock() - t0)
    return _stats(ns)


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def layer_costs(site: Site, *, n: int, audit_n: int, cpu: int | None) -> list[dict[str, Any]]:  # noqa: PLR0915
    import anyio
    import joblib
    import numpy as np
    from starlette.requests import Request

    from modelshield.defenses.interface import GuardRequest
    from modelshield.gateway.app import Gateway
    from modelshield.gateway.auditlog import AuditLog, AuditRecord
    from modelshield.gateway.config import OutputPolicy, load_config
    from modelshield.gateway.identity import Permission
    from modelshield.gateway.limits import Limiter, LimitSettings
    from modelshield.gateway.protocol import InferenceRequest, decode_inputs, encode_output

    rows: list[dict[str, Any]] = []

    def add(layer: str, stats: dict[str, float], note: str = "") -> None:
        rows.append({"layer": layer, **stats, "note": note})
        say(f"  {layer}: median {stats['median_us']:.1f} µs, p99 {stats['p99_us']:.1f} µs")

    gateway = Gateway(load_config(site.configs["gateway"]), start_watcher=False)
    try:
        with pinned(cpu):
            key = site.keys["gateway"]
            bodies = [b.encode() for b in site.bodies]
            m = len(bodies)
            deployment = gateway.deployment
            clf = deployment.model.classifier
            schema = deployment.schema
            assert schema is not None
            ((guard, _mode),) = deployment.output_guards
            hardening = gateway._hardenings[OutputPolicy.ROUNDED].hardening
            assert hardening is not None
            principal = gateway.auth.authenticate(f"Bearer {key}", None)
            client = principal.client
            requests = [InferenceRequest.model_validate_json(b) for b in bodies]
            xs = [decode_inputs(r, clf.input_shape, max_rows=256) for r in requests]
            x32s = [x.astype(np.float32) for x in xs]
            probas = [np.asarray(clf.predict_proba(x), dtype=np.float64) for x in x32s]
            raw = joblib.load(site.joblib_model)

            add("timer overhead (empty call)", timed_calls(lambda i: None, n))
            add("request: SHA-256 of the body", timed_calls(lambda i: hashlib.sha256(bodies[i % m]).hexdigest(), n))
            add(
                "auth: API key (shape, SHA-256, snapshot, compare_digest)",
                timed_calls(lambda i: gateway.auth.authenticate(f"Bearer {key}", None), n),
            )
            scope = {
                "type": "http",
                "method": "POST",
                "path": f"/v2/models/{MODEL_NAME}/infer",
                "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
                "state": {"request_id": "bench"},
            }
            add(
                "auth: Gateway.authenticate (headers, role)",
                timed_calls(lambda i: gateway.authenticate(Request(scope), Permission.INFER), n),
            )
            add(
                "protocol: parse the JSON body (pydantic)",
                timed_calls(lambda i: InferenceRequest.model_validate_json(bodies[i % m]), n),
            )
            add(
                "protocol: decode the tensor",
                timed_calls(lambda i: decode_inputs(requests[i % m], clf.input_shape, max_rows=256), n),
            )
            add("output policy lookup", timed_calls(lambda i: gateway.policy_for(principal), n))
            mem = Limiter(LimitSettings(1e7, 1e9, 10**15), "memory://")
            add("limits: check (memory://)", timed_calls(lambda i: mem.check(client, 1), n))
            prefix = f"msbench{secrets.token_hex(4)}"
            red = Limiter(LimitSettings(1e7, 1e9, 10**15), REDIS_URL, prefix=prefix)
            try:
                add("limits: check (Redis, loopback)", timed_calls(lambda i: red.check(client, 1), n))
            finally:
                _clean_redis(prefix)
                red.close()
            add("validation: schema check", timed_calls(lambda i: schema.check(xs[i % m]), n))
            add(
                "model: float32 copy + GuardRequest",
                timed_calls(lambda i: GuardRequest(client, xs[i % m].astype(np.float32)), n),
            )
            add("model: predict_proba, raw scikit-learn", timed_calls(lambda i: raw.predict_proba(xs[i % m]), n))
            add("model: predict_proba, modelshield wrapper", timed_calls(lambda i: clf.predict_proba(x32s[i % m]), n))
            pool = gateway._pool
            add(
                "thread hand-off to the request pool and back (an empty task)",
                timed_calls(lambda i: pool.submit(int).result(), n),
            )
            for i in range(3000):  # the monitor's steady state: growing sets and windows full
                guard.inspect(GuardRequest(f"{client}-x", x32s[i % m], probabilities=probas[i % m]))
            add(
                "guard: extraction monitor inspect (steady state)",
                timed_calls(
                    lambda i: guard.inspect(GuardRequest(f"{client}-x", x32s[i % m], probabilities=probas[i % m])), n
                ),
                "GuardRequest construction included",
            )
            add(
                "output: rounded policy (harden)",
                timed_calls(lambda i: hardening.harden(probas[i % m], x32s[i % m], client_id=client), n),
            )
            add(
                "response: encode outputs + JSON",
                timed_calls(
                    lambda i: json.dumps(
                        {"model_name": MODEL_NAME, "outputs": [encode_output("probabilities", probas[i % m])]},
                        separators=(",", ":"),
                    ),
                    n,
                ),
            )
            add(
                "metrics: request counter + histogram",
                timed_calls(lambda i: gateway.metrics.request(client, 200, 0.001), n),
            )

            def record(i: int) -> AuditRecord:
                return AuditRecord(
                    time=time.time(),
                    request_id=secrets.token_hex(16),
                    kind="infer",
                    client=client,
                    role="client",
                    model_digest=deployment.model.digest,
                    input_sha256=hashlib.sha256(bodies[i % m]).hexdigest(),
                    status=200,
                    decision="allow",
                    reasons=(),
                    output={"rows": 1, "policy": "rounded", "labels": [0]},
                    latency_ms=1.0,
                )

            shipped = gateway.log.max_wait_s
            other = 0.001 if shipped == 0 else 0.0
            add(
                f"audit: record + append→commit (SQLite, one at a time, max_wait_s = {shipped:g}, as configured)",
                timed_calls(lambda i: gateway.log.append(record(i)).result(), audit_n, warm=20),
            )
            other_log = AuditLog(
                f"sqlite:///{site.root / 'audit-other.db'}", signing_key=gateway.signing_key, max_wait_s=other
            )
            try:
                add(
                    f"audit: append→commit (SQLite, one at a time, max_wait_s = {other:g}), for comparison",
                    timed_calls(lambda i: other_log.append(record(i)).result(), audit_n, warm=20),
                    "a wait above 0 is paid in full by every request at low load",
                )
            finally:
                other_log.close()
            if site.pg_database is not None:
                pg_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{site.pg_database}"
                for wait, label in (
                    (shipped, f"max_wait_s = {shipped:g}, as configured"),
                    (other, f"max_wait_s = {other:g}"),
                ):
                    pg_log = AuditLog(pg_url, signing_key=gateway.signing_key, max_wait_s=wait)
                    try:

                        def commit(i: int, lg: AuditLog = pg_log) -> object:
                            return lg.append(record(i)).result()

                        add(
                            f"audit: append→commit (PostgreSQL, one at a time, {label})",
                            timed_calls(commit, audit_n, warm=20),
                        )
                    finally:
                        pg_log.close()
            add(
                "audit: per record under 16 concurrent appenders (SQLite)",
                _concurrent_audit(gateway.log, record, 16, audit_n * 4),
                "wall time / records: what saturation pays per request",
            )

            async def hops() -> dict[str, float]:
                clock = time.perf_counter_ns
                ns = []
                for i in range(n + 100):
                    t0 = clock()
                    await anyio.to_thread.run_sync(lambda: None)
                    if i >= 100:
                        ns.append(clock() - t0)
                return _stats(ns)

            add("async → worker thread hop (anyio.to_thread.run_sync)", asyncio.run(hops()))
            infer_client = principal
            add(
                "pipeline: Gateway.infer (protocol → limits → schema → model → guard → policy)",
                timed_calls(lambda i: gateway.infer(infer_client, MODEL_NAME, bodies[i % m], deployment), n),
            )
            add(
                "pipeline: Gateway.handle_infer (auth → … → audit commit → response)",
                timed_calls(
                    lambda i: gateway.handle_infer(Request(scope), MODEL_NAME, bodies[i % m], time.perf_counter()),
                    audit_n,
                    warm=20,
                ),
            )

            def bare(i: int) -> bytes:
                x = np.asarray(json.loads(bodies[i % m])["inputs"][0]["data"], dtype=np.float64).reshape(1, -1)
                p = raw.predict_proba(x)
                return json.dumps({"outputs": [{"data": p.astype(np.float32).ravel().tolist()}]}).encode()

            add("bare FastAPI's handler work (parse, predict_proba, JSON), for scale", timed_calls(bare, n))
    finally:
        gateway.close()
    return rows


def _concurrent_audit(log: Any, record: Callable[[int], Any], threads: int, total: int) -> dict[str, float]:
    per = total // threads
    barrier = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(per):
            log.append(record(k * per + i)).result()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter_ns()
    for t in pool:
        t.join()
    per_record = (time.perf_counter_ns() - t0) / (per * threads) / 1000.0
    return {"n": per * threads, "median_us": per_record, "p99_us": float("nan"), "mean_us": per_record}


def _clean_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for k in client.scan_iter(match=f"{prefix}*"):
            client.delete(k)
    finally:
        client.close()


# -- the run ----------------------------------------------------------------------------------------------------------
def measure(
    servers: list[Server], site: Site, work: Path, args: argparse.Namespace, pin_s: list[str], pin_c: list[str]
) -> dict[str, list[dict[str, Any]]]:
    rounds: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    for r in range(args.rounds):
        for server in servers:
            assign_port(server, site)
            say(f"round {r + 1}/{args.rounds}: starting {server.name} on port {server.port}")
            server.start(work)
            try:
                sample = server.check()
                say(f"  {server.name} answers: {sample[:160]}")
                wrk(server, work, seconds=args.warmup, connections=4, pin=pin_c)
                load = load_average()
                ol = openloop(
                    server, work, rate=args.rate, seconds=args.duration, connections=args.ol_connections, pin=pin_c
                )
                lat = ol["latency_ms"]
                say(
                    f"  {server.name} at {args.rate:g} req/s: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms "
                    f"(statuses {ol['statuses']})"
                )
                sat = wrk(server, work, seconds=args.sat_duration, connections=args.connections, pin=pin_c)
                say(
                    f"  {server.name} saturation: {sat['rps']:.0f} req/s (non-2xx {sat['status']}, p50 "
                    f"{sat['p50_us'] / 1000:.2f} ms)"
                )
                rounds[server.name].append({"openloop": ol, "saturation": sat, "load_before": load, "sample": sample})
            finally:
                server.stop()
    return rounds


def _median_round(runs: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    return float(statistics.median(key(r) for r in runs))


def summarise(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, runs in rounds.items():
        if not runs:
            continue
        out[name] = {
            "p50_ms": _median_round(runs, lambda r: r["openloop"]["latency_ms"]["p50"]),
            "p90_ms": _median_round(runs, lambda r: r["openloop"]["latency_ms"]["p90"]),
            "p99_ms": _median_round(runs, lambda r: r["openloop"]["latency_ms"]["p99"]),
            "p999_ms": _median_round(runs, lambda r: r["openloop"]["latency_ms"]["p999"]),
            "service_p50_ms": _median_round(runs, lambda r: r["openloop"]["service_ms"]["p50"]),
            "service_p99_ms": _median_round(runs, lambda r: r["openloop"]["service_ms"]["p99"]),
            "saturation_rps": _median_round(runs, lambda r: r["saturation"]["rps"]),
            "saturation_p50_ms": _median_round(runs, lambda r: r["saturation"]["p50_us"] / 1000.0),
            "saturation_p99_ms": _median_round(runs, lambda r: r["saturation"]["p99_us"] / 1000.0),
            "non_200": float(
                sum(
                    sum(v for k, v in r["openloop"]["statuses"].items() if k != "200") + r["saturation"]["status"]
                    for r in runs
                )
            ),
            "rounds": float(len(runs)),
        }
    return out


def targets(summary: dict[str, dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bare = summary.get("bare")
    if bare is None:
        return out
    for name in ("gateway", "gateway-pg"):
        gw = summary.get(name)
        if gw is None:
            continue
        added50 = gw["p50_ms"] - bare["p50_ms"]
        added99 = gw["p99_ms"] - bare["p99_ms"]
        ratio = gw["saturation_rps"] / bare["saturation_rps"]
        out[name] = {
            "added_p50_ms": added50,
            "added_p99_ms": added99,
            "saturation_ratio": ratio,
            "p50_ok": added50 <= 0.5,
            "p99_ok": added99 <= 2.0,
            "throughput_ok": ratio >= 0.8,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        (
            f"Run {result['started']} on {result['machine']['cpus']} CPUs, load average before "
            f"{result['load_before']}, after {result['load_after']}; rate {result['settings']['rate']:g} req/s for "
            f"{result['settings']['duration']:g} s (open loop, {result['settings']['ol_connections']} connections), "
            f"saturation wrk -t1 -c{result['settings']['connections']} for {result['settings']['sat_duration']:g} s; "
            f"{result['settings']['rounds']} round(s), median shown."
        ),
        "",
        (
            "| server | p50 at 200/s (ms) | p90 | p99 | p99.9 | service p50 / p99 | saturation (req/s) "
            "| sat. p50 / p99 (ms) | non-200 |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, v in s.items():
        lines.append(
            f"| {name} | {v['p50_ms']:.3f} | {v['p90_ms']:.3f} | {v['p99_ms']:.3f} | {v['p999_ms']:.3f} | "
            f"{v['service_p50_ms']:.3f} / {v['service_p99_ms']:.3f} | {v['saturation_rps']:.0f} | "
            f"{v['saturation_p50_ms']:.2f} / {v['saturation_p99_ms']:.2f} | {v['non_200']:.0f} |"
        )
    if result["targets"]:
        lines += [
            "",
            "| gateway vs bare | added p50 (ms) ≤ 0.5 | added p99 (ms) ≤ 2 | throughput ratio ≥ 0.8 |",
            "| --- | --- | --- | --- |",
        ]
        for name, t in result["targets"].items():
            lines.append(
                f"| {name} | {t['added_p50_ms']:.3f} {'✓' if t['p50_ok'] else '✗'} | {t['added_p99_ms']:.3f} "
                f"{'✓' if t['p99_ok'] else '✗'} | {t['saturation_ratio']:.2f} {'✓' if t['throughput_ok'] else '✗'} |"
            )
    if result["layers"]:
        lines += [
            "",
            "| layer (in process, per call) | median (µs) | p99 (µs) | calls | note |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in result["layers"]:
            p99 = "—" if row["p99_us"] != row["p99_us"] else f"{row['p99_us']:.1f}"
            lines.append(f"| {row['layer']} | {row['median_us']:.1f} | {p99} | {row['n']} | {row['note']} |")
    return "\n".join(lines) + "\n"


def versions(mlserver_python: Path | None) -> dict[str, str]:
    import fastapi
    import sklearn
    import starlette
    import uvicorn

    from modelshield._version import __version__

    out = {
        "python": platform.python_version(),
        "modelshield": __version__,
        "fastapi": fastapi.__version__,
        "starlette": starlette.__version__,
        "uvicorn": uvicorn.__version__,
        "scikit-learn": sklearn.__version__,
    }
    try:
        out["wrk"] = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True).stdout.split()[1]  # noqa: S607
    except (OSError, IndexError):
        out["wrk"] = "absent"
    if mlserver_python is not None:
        code = "import mlserver, sklearn; print(mlserver.__version__, sklearn.__version__)"
        got = subprocess.run(
            [str(mlserver_python), "-c", code], check=False, capture_output=True, text=True
        ).stdout.split()
        out["mlserver"] = got[0] if got else "?"
    return out


def main() -> None:  # noqa: PLR0915 - argument handling, then the run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for results.json and results.md")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (seconds, one round)")
    parser.add_argument("--mlserver-python", type=Path, default=DEFAULT_MLSERVER)
    parser.add_argument("--no-pg", action="store_true", help="skip the PostgreSQL + Redis variant")
    parser.add_argument("--servers", default="", help="comma-separated subset (bare,mlserver,gateway,gateway-pg)")
    parser.add_argument("--no-layers", action="store_true", help="skip the per-layer measurements")
    parser.add_argument("--layers-only", action="store_true", help="only the per-layer measurements")
    parser.add_argument("--rate", type=float, default=TARGET_RATE)
    parser.add_argument("--duration", type=float, default=None, help="open-loop seconds (20; quick 5)")
    parser.add_argument("--sat-duration", type=float, default=None, help="wrk seconds (15; quick 4)")
    parser.add_argument("--warmup", type=float, default=None, help="wrk warm-up seconds (5; quick 2)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (2; quick 1)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections at saturation")
    parser.add_argument("--ol-connections", type=int, default=16, help="open-loop connection pool")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    q = args.quick
    args.duration = args.duration or (5.0 if q else 20.0)
    args.sat_duration = args.sat_duration or (4.0 if q else 15.0)
    args.warmup = args.warmup or (2.0 if q else 5.0)
    args.rounds = args.rounds or (1 if q else 2)
    n, audit_n = (2000, 200) if q else (10000, 1000)

    if shutil.which("wrk") is None and not args.layers_only:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    mlserver_python: Path | None = args.mlserver_python
    if mlserver_python is not None and not (mlserver_python.parent / "mlserver").is_file():
        say(f"no MLServer at {mlserver_python}; it is skipped")
        mlserver_python = None
    cpus = os.cpu_count() or 1
    can_pin = cpus >= 2 and shutil.which("taskset") is not None
    pin_s = ["taskset", "-c", str(args.server_cpu)] if can_pin else []
    pin_c = ["taskset", "-c", str(args.client_cpu)] if can_pin else []
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load_before = [round(v, 2) for v in load_average()]
    say(f"working in {work}; load average {load_before}")
    site = build_site(work, with_pg=not args.no_pg)
    try:
        servers = make_servers(site, mlserver_python, pin_s)
        if args.servers:
            wanted = set(args.servers.split(","))
            servers = [s for s in servers if s.name in wanted]
        rounds = {} if args.layers_only else measure(servers, site, work, args, pin_s, pin_c)
        layers = []
        if not args.no_layers:
            say("per-layer costs, in process")
            layers = layer_costs(site, n=n, audit_n=audit_n, cpu=args.server_cpu if can_pin else None)
        summary = summarise(rounds)
        result = {
            "started": started,
            "load_before": load_before,
            "load_after": [round(v, 2) for v in load_average()],
            "machine": {"cpus": cpus, "pinned": can_pin, "platform": platform.platform()},
            "versions": versions(mlserver_python),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "summary": summary,
            "targets": targets(summary),
            "rounds": rounds,
            "layers": layers,
        }
        (args.out / "results.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        text = markdown(result)
        (args.out / "results.md").write_text(text, encoding="utf-8")
        print(text)
        say(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    finally:
        if site.pg_database is not None:
            _drop_pg_database(site.pg_database)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
