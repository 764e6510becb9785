"""Replicas and outages with real gateway processes: ``modelshield serve`` in subprocesses, real Redis and PostgreSQL.

Each test starts one or more gateways as separate processes (``.venv/bin/modelshield serve --config FILE``), talks
to them over HTTP, breaks something on purpose (a process, Redis, PostgreSQL) and then checks the contract from the
outside: the shared daily budget holds across processes, every answered request is in ONE verifiable log written by
all of them, and a store that is down makes the gateway refuse (503), never answer unlogged or unlimited.

Each gateway's stderr goes to a file under the test's directory; a failure shows its tail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .conftest import Site, free_port

pytestmark = [pytest.mark.services, pytest.mark.slow]

MODELSHIELD = str(Path(sys.executable).with_name("modelshield"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
START_TIMEOUT_S = 90.0


# -- gateway processes ----------------------------------------------------------------------------------------------
@dataclass
class Gateway:
    """One ``modelshield serve`` process (the uvicorn supervisor when it has several workers)."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    stderr: Path

    def log_tail(self, n: int = 40) -> str:
        lines = self.stderr.read_text(errors="replace").splitlines() if self.stderr.is_file() else []
        return f"--- stderr of gateway {self.name} (last {n} lines) ---\n" + "\n".join(lines[-n:])

    def wait_live(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway {self.name} exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway {self.name} did not come up in {timeout} s\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def workers(self) -> list[int]:
        """The pids of the uvicorn worker processes (children started by multiprocessing's spawn)."""
        pids = []
        for pid in _children(self.proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(pid)
        return pids


def _stop_cleanly(*gateways: Gateway) -> None:
    """SIGTERM each gateway and check that uvicorn shut it down gracefully.

    uvicorn re-raises the signal once it has shut down, so a graceful stop exits with -SIGTERM, not 0.
    """
    for gateway in gateways:
        assert gateway.stop() in (0, -signal.SIGTERM), gateway.log_tail()
        assert "Finished server process" in gateway.stderr.read_text(), gateway.log_tail()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


@contextmanager
def gateways(site: Site, *configs: tuple[str, Path, list[str]]) -> Iterator[list[Gateway]]:
    """Start a gateway for each ``(name, config, extra args)`` at once, wait until all answer, stop them after."""
    started: list[Gateway] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for name, config, extra in configs:
            port = free_port()
            stderr = site.root / f"serve-{name}.stderr"
            with stderr.open("wb") as err:
                proc = subprocess.Popen(
                    [MODELSHIELD, "serve", "--config", str(config), "--port", str(port), *extra],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    cwd=site.root,
                    env=env,
                )
            started.append(Gateway(name, f"http://127.0.0.1:{port}", proc, stderr))
        for gateway in started:
            gateway.wait_live()
        yield started
    finally:
        for gateway in started:
            gateway.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODELSHIELD, *args], capture_output=True, text=True, timeout=60, check=False)


def _create_key(config: Path, client: str, *, budget: int | None = None) -> str:
    extra = ["--budget", str(budget)] if budget is not None else []
    done = _cli("gateway", "keys", "create", "--config", str(config), "--client", client, *extra)
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("msk_") and secret not in done.stderr
    return secret


def _verify(config: Path) -> str:
    done = _cli("gateway", "log", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("verified: audit log intact"), done.stdout
    return done.stdout.strip()


def _export(config: Path, out: Path) -> list[dict[str, Any]]:
    done = _cli("gateway", "log", "export", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def _wait_logged(config: Path, n: int, timeout: float = 10.0) -> None:
    """Wait until the log holds ``n`` inference records (a refusal's record is committed just after its answer)."""
    out = config.with_name("waiting.jsonl")
    _poll(lambda: sum(r["kind"] == "infer" for r in _export(config, out)) >= n, timeout, f"{n} records")


def _client_name(prefix: str) -> str:
    return f"{prefix}-{os.urandom(6).hex()}"  # Redis is shared between tests: counters are keyed by client name


# -- requests -------------------------------------------------------------------------------------------------------
def _rows(site: Site, n: int) -> np.ndarray:
    import pandas as pd

    frame = pd.read_csv(site.reference)
    return frame.drop(columns=["label"]).to_numpy(dtype=np.float64)[:n]


def _body(x: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}


def _infer(url: str, key: str, body: dict[str, Any], timeout: float = 15) -> httpx.Response:
    return httpx.post(
        f"{url}/v2/models/phishing-lr/infer", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
    )


@dataclass(frozen=True)
class Sent:
    """One request a load thread sent: when, and what came back (status None: no HTTP answer)."""

    started: float
    ended: float
    status: int | None
    request_id: str | None
    error: str = ""


@dataclass
class Load:
    """Client threads that send inference requests continuously until stopped, recording every outcome."""

    urls: list[str]
    key: str
    body: dict[str, Any]
    threads: int = 3
    sent: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, i: int) -> None:
        n = i
        while not self._stop.is_set():
            url = self.urls[n % len(self.urls)]
            n += 1
            started = time.monotonic()
            try:
                response = _infer(url, self.key, self.body, timeout=20)
            except httpx.HTTPError as exc:
                self.sent.append(Sent(started, time.monotonic(), None, None, type(exc).__name__))
                time.sleep(0.01)
                continue
            self.sent.append(
                Sent(started, time.monotonic(), response.status_code, response.headers.get("x-request-id"))
            )
            if response.status_code != 200:
                time.sleep(0.01)

    def count(self, status: int | None, after: float = 0.0) -> int:
        return sum(1 for s in list(self.sent) if s.status == status and s.started >= after)

    def wait_for(self, status: int | None, n: int, *, after: float = 0.0, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(status, after) < n:
            if time.monotonic() > deadline:
                seen = Counter(s.status for s in list(self.sent) if s.started >= after)
                raise AssertionError(f"waited {timeout} s for {n} answers {status}; saw {dict(seen)}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in self._threads)


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _status(url: str, key: str, body: dict[str, Any]) -> int:
    try:
        return _infer(url, key, body, timeout=15).status_code
    except httpx.TransportError:
        return -1


def _assert_answered_are_logged(records: list[dict[str, Any]], sent: list[Sent]) -> None:
    """Every 200 a client received has its record, with status 200; no request id is logged twice."""
    infer = [r for r in records if r["kind"] == "infer"]
    ids = Counter(r["request_id"] for r in infer)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1][:5]
    logged = {r["request_id"]: r["status"] for r in infer}
    answered = [s.request_id for s in sent if s.status == 200]
    missing = [i for i in answered if logged.get(i) != 200]
    assert not missing, f"{len(missing)} of {len(answered)} answers (200) have no record with status 200"


# -- 1. two processes, one budget, one chain ------------------------------------------------------------------------
def test_two_processes_share_the_daily_budget_and_one_chain(site: Site, pg_url: str, redis_url: str) -> None:
    config = site.config({"store": {"database": pg_url, "redis": redis_url}})
    budget, batch = 60, 7
    client = _client_name("budget")
    key = _create_key(config, client, budget=budget)
    body = _body(_rows(site, batch))
    seen: list[tuple[int, str, str]] = []  # (status, request id, which gateway)
    with gateways(site, ("a", config, []), ("b", config, [])) as (a, b):
        assert a.proc.pid != b.proc.pid and a.url != b.url
        for n in range(2 * budget // batch + 2):
            gateway = (a, b)[n % 2]
            response = _infer(gateway.url, key, body)
            assert response.status_code in (200, 429), response.text
            seen.append((response.status_code, response.headers["x-request-id"], gateway.name))
            if response.status_code == 429:
                assert "daily row budget" in response.json()["error"]
                assert int(response.headers["retry-after"]) >= 1
                break
        else:
            raise AssertionError(f"no 429 after {len(seen)} batches of {batch} rows with a budget of {budget}")
        # the other process refuses too: the budget is one counter in Redis, not one per process
        other = (a, b)[len(seen) % 2]
        response = _infer(other.url, key, body)
        assert response.status_code == 429, response.text
        seen.append((429, response.headers["x-request-id"], other.name))
        assert {name for status, _, name in seen if status == 200} == {"a", "b"}
        _wait_logged(config, len(seen))  # refusals are logged without being awaited
    answered = batch * sum(1 for status, _, _ in seen if status == 200)
    assert budget - batch < answered <= budget, (answered, budget, batch)

    assert "verified: audit log intact" in _verify(config)
    records = _export(config, site.root / "log.jsonl")
    infer = [r for r in records if r["kind"] == "infer"]
    assert sorted((r["status"], r["request_id"]) for r in infer) == sorted((s, i) for s, i, _ in seen)
    assert all(r["client"] == client for r in infer)
    assert sum(r["output"]["rows"] for r in infer if r["status"] == 200) == answered
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert sum(1 for r in records if r["kind"] == "model-load") == 2  # one chain, written by both processes


# -- 2. kill -9 of one worker under load ----------------------------------------------------------------------------
def test_a_killed_worker_leaves_a_verifiable_log_with_every_answer(site: Site, pg_url: str, redis_url: str) -> None:
    config = site.config({"store": {"database": pg_url, "redis": redis_url}})
    key = _create_key(config, _client_name("load"))
    body = _body(_rows(site, 4))
    with gateways(site, ("workers", config, ["--workers", "2"])) as (gateway,):
        _poll(lambda: len(gateway.workers()) == 2, 30, "two uvicorn workers")
        _poll(
            lambda: gateway.stderr.read_text().count("Application startup complete") >= 2, START_TIMEOUT_S, "both ready"
        )
        load = Load([gateway.url], key, body, threads=4).start()
        try:
            load.wait_for(200, 30)
            victim = gateway.workers()[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            load.wait_for(200, 30, after=killed)  # the other worker keeps answering
            _poll(lambda: victim not in gateway.workers() and len(gateway.workers()) == 2, 60, "a new worker")
        finally:
            load.stop()
        _stop_cleanly(gateway)
    statuses = Counter(s.status for s in load.sent)
    assert set(statuses) <= {200, None}, statuses  # nothing but answers, and connections cut by the kill
    assert f"Child process [{victim}] died" in gateway.stderr.read_text()

    _verify(config)
    records = _export(config, site.root / "log.jsonl")
    _assert_answered_are_logged(records, load.sent)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert sum(r["kind"] == "model-load" for r in records) >= 4  # the parent's check, two workers, the new one


# -- 3. Redis down: limits fail closed --------------------------------------------------------------------------------
@dataclass
class RedisServer:
    """A private ``redis-server`` on a free port (no persistence), started and killed by the test."""

    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        with (self.root / "redis.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        _poll(self._answers, 10, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


def test_redis_down_fails_closed_unless_allowed(site: Site, redis_url: str, tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    try:
        closed = site.config({"store": {"redis": redis.url}}, name="reject.toml")
        opened = site.config(
            {"store": {"redis": redis.url}, "limits": {"on_storage_error": "allow"}}, name="allow.toml"
        )
        key = _create_key(closed, _client_name("redis"))  # one SQLite database for both: one key
        body = _body(_rows(site, 3))
        got: list[tuple[int, str]] = []
        with gateways(site, ("reject", closed, []), ("allow", opened, [])) as (reject, allow):
            for gateway in (reject, allow):
                assert _infer(gateway.url, key, body).status_code == 200
            redis.kill()
            for _ in range(5):
                response = _infer(reject.url, key, body)
                assert response.status_code == 503, response.text
                assert "limits" in response.json()["error"] and "Traceback" not in response.text
                got.append((503, response.headers["x-request-id"]))
                response = _infer(allow.url, key, body)
                assert response.status_code == 200, response.text
                got.append((200, response.headers["x-request-id"]))
            redis.start()  # back on the same port: the closed gateway serves again, without a restart
            _poll(lambda: _status(reject.url, key, body) == 200, 15, "a 200 once Redis is back")
            _stop_cleanly(reject, allow)
        assert "limits storage" in reject.stderr.read_text()  # the outage was logged
    finally:
        redis.kill()
    _verify(closed)
    logged = {r["request_id"]: r["status"] for r in _export(closed, tmp_path / "log.jsonl") if r["kind"] == "infer"}
    assert all(logged.get(request_id) == status for status, request_id in got), got


# -- 4. PostgreSQL down: 503, never an unlogged answer -------------------------------------------------------------
class PrivateCluster:
    """A throwaway PostgreSQL cluster (initdb in a temporary directory, run as the postgres user) on a free port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.data = root / "data"

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and (PG_BIN / "initdb").is_file() and Path(RUNUSER).is_file()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(
            [RUNUSER, "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def init(self) -> None:
        shutil.chown(self.root, "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = str(PG_BIN / "pg_ctl")
        self._as_postgres(pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class TcpProxy:
    """A TCP proxy from a free port to ``target``: :meth:`stop` closes the port and cuts every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._running = threading.Event()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._running.set()
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                downstream.close()
                continue
            for s in (downstream, upstream):
                s.settimeout(None)
            with self._lock:
                self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._running.clear()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.stop()


def test_postgres_down_refuses_and_never_answers_unlogged(
    site: Site, pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Serve on a PostgreSQL that the test stops and starts again: 503 while it is down, every 200 in the log.

    Where it can (as root, with PostgreSQL 15's binaries) the test runs a private PostgreSQL and stops it with
    ``pg_ctl stop -m immediate``; otherwise it cuts a TCP proxy in front of the machine's shared one.
    """
    if PrivateCluster.available():
        cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="modelshield-pg-")))  # not under tmp_path: mode 0700
        try:
            cluster.init()
        except BaseException:
            cluster.close()
            raise
        db: PrivateCluster | TcpProxy = cluster
        url = cluster.url
    else:
        db = TcpProxy(("127.0.0.1", 5432))
        db.start()
        url = db.url + "/" + pg_url.rsplit("/", 1)[1]
    try:
        config = site.config({"store": {"database": url, "redis": redis_url}})
        key = _create_key(config, _client_name("pg"))
        body = _body(_rows(site, 2))
        with gateways(site, ("pg", config, [])) as (gateway,):
            load = Load([gateway.url], key, body, threads=3).start()
            try:
                load.wait_for(200, 10)
                db.stop()
                down = time.monotonic()
                load.wait_for(503, 10, after=down)
                _poll(lambda: httpx.get(f"{gateway.url}/v2/health/ready").status_code == 503, 10, "not ready")
                time.sleep(1.0)  # serve through the outage for a while: key refreshes, probes, retries
                restarting = time.monotonic()  # from here on PostgreSQL may accept connections again
                db.start()
                load.wait_for(200, 10, after=restarting, timeout=30)
                _poll(lambda: httpx.get(f"{gateway.url}/v2/health/ready").status_code == 200, 15, "ready again")
            finally:
                load.stop()
            during = Counter(s.status for s in load.sent if s.started >= down and s.ended <= restarting)
            assert set(during) == {503}, during  # while the database was down: refused, never answered
            _stop_cleanly(gateway)
        assert "audit log" in gateway.stderr.read_text() and "unavailable" in gateway.stderr.read_text()
        assert all(s.status in (200, 503) for s in load.sent), Counter(s.status for s in load.sent)
        _verify(config)
        records = _export(config, tmp_path / "log.jsonl")
        _assert_answered_are_logged(records, load.sent)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    finally:
        db.close()


# -- a graceful stop closes the log --------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_closes_the_log_with_a_final_signed_checkpoint(site: Site, redis_url: str, workers: int) -> None:
    from modelshield.gateway.auditlog import verify_log
    from modelshield.supply_chain.keys import load_public_key

    config = site.config({"store": {"redis": redis_url}, "audit": {"checkpoint_every": 1000}})
    key = _create_key(config, _client_name("term"))
    with gateways(site, ("term", config, ["--workers", str(workers)])) as (gateway,):
        for _ in range(3):
            assert _infer(gateway.url, key, _body(_rows(site, 2))).status_code == 200
        _stop_cleanly(gateway)
    url = f"sqlite:///{site.root / 'gateway.db'}"
    result = verify_log(url, load_public_key(site.root / "keys" / "gateway.pub"))
    assert result.records >= 4  # the model's load and three answers
    assert result.last_checkpoint_seq == result.head_seq, result.summary()  # close() signs the head


# -- PostgreSQL hangs: 503 in bounded time ---------------------------------------------------------------------------
def test_a_locked_key_table_is_answered_503_in_bounded_time(site: Site, pg_url: str, redis_url: str) -> None:
    import psycopg

    config = site.config(
        {
            "store": {"database": pg_url, "redis": redis_url},
            "server": {"request_timeout_s": 2.0},
            "auth": {"key_refresh_s": 0.2},
        }
    )
    key = _create_key(config, _client_name("locked"))
    body = _body(_rows(site, 2))
    with gateways(site, ("locked", config, [])) as (gateway,):
        assert _infer(gateway.url, key, body).status_code == 200
        with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as blocker:
            blocker.execute("LOCK TABLE gateway_keys IN ACCESS EXCLUSIVE MODE")  # e.g. a migration, VACUUM FULL
            time.sleep(0.5)  # the gateway's snapshot of the keys is now older than key_refresh_s
            started = time.monotonic()
            try:
                status = _infer(gateway.url, key, body, timeout=6).status_code
            except httpx.TimeoutException:
                status = None
            took = time.monotonic() - started
            blocker.rollback()
        assert status == 503 and took < 4.0, (status, took)
        assert _infer(gateway.url, key, body).status_code == 200


# -- 7. a suspension decided on one replica holds on the other within a second ---------------------------------------
def test_a_thief_suspended_on_one_replica_is_refused_by_the_other_within_a_second(
    site: Site, pg_url: str, redis_url: str
) -> None:
    from modelshield.monitoring.watermark import WatermarkKey

    WatermarkKey.generate(site.root / "keys" / "watermark.key", overwrite=True)
    (site.root / "response.toml").write_text('[[rule]]\nname = "suspend thieves"\naction = "suspend"\n')
    config = site.config(
        {
            "store": {"database": pg_url, "redis": redis_url},
            "monitoring": {"enabled": True, "detectors": ["extraction"], "drift_window": 0},
            "response": {"policy": "response.toml"},
        }
    )
    thief = _create_key(config, _client_name("thief"))
    reference = _rows(site, 1000)
    values = [np.unique(column) for column in reference.T]
    rng = np.random.default_rng(11)
    with gateways(site, ("a", config, []), ("b", config, [])) as (a, b):
        refused_at = None
        for _ in range(400):  # synthetic queries, all to replica a
            row = np.array([[rng.choice(v) for v in values]])
            response = _infer(a.url, thief, _body(row))
            if response.status_code == 403:
                refused_at = time.monotonic()
                break
            assert response.status_code == 200, response.text
        assert refused_at is not None, "replica a never suspended the thief"
        while _infer(b.url, thief, _body(reference[:1])).status_code != 403:
            assert time.monotonic() - refused_at < 1.0, "replica b still answered the thief 1 s later"
            time.sleep(0.02)
