"""Fixtures for the gateway: throwaway PostgreSQL databases and Redis databases on the machine's real services."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"


def _no_services() -> None:
    if os.environ.get("CI_NO_SERVICES"):
        pytest.skip("CI_NO_SERVICES is set: no PostgreSQL or Redis")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped after it."""
    _no_services()
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"modelshield_gw_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}). Start it, or set CI_NO_SERVICES=1 to skip "
            "the tests marked 'services'.",
            pytrace=False,
        )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Redis on 127.0.0.1 under a key prefix of its own: the URL, with every key of the prefix deleted after."""
    _no_services()
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}). Start it, or set CI_NO_SERVICES=1 to skip the tests "
            "marked 'services'.",
            pytrace=False,
        )
    # One logical database is shared by every test: tests isolate themselves by a random prefix in their keys
    # (the gateway's limits are keyed by client name; tests use random client names).
    try:
        yield REDIS_URL
    finally:
        client.close()


# -- a small signed model, its data and a configuration ---------------------------------------------------------------
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


@dataclass(frozen=True)
class Site:
    """A gateway directory: a signed scikit-learn model (skops), its training data as CSV, keys, a configuration."""

    root: Path
    model: Path
    reference: Path
    publisher_key: Path
    publisher_pub: Path
    n_features: int
    n_classes: int

    def config(self, extra: Mapping[str, Mapping[str, Any]] | None = None, *, name: str = "gateway.toml") -> Path:
        """Write a configuration serving the model (sections of ``extra`` replace or add keys) and return its path."""
        sections: dict[str, dict[str, Any]] = {
            "model": {
                "file": str(self.model),
                "public_key": str(self.publisher_pub),
                "reference": str(self.reference),
                "name": "phishing-lr",
            },
            "store": {"database": f"sqlite:///{self.root / 'gateway.db'}"},
            "audit": {"signing_key": "keys/gateway.key", "checkpoint_every": 50},
            "limits": {"requests_per_second": 1000.0, "rows_per_second": 100000.0, "rows_per_day": 1000000},
            # The extraction monitor's calibration costs seconds per gateway start; test_guards.py turns it on.
            "guards": {"extraction_monitor": "off"},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                if value is None:
                    continue
                lines.append(f"{key} = {_toml(value)}")
        path = self.root / name
        path.write_text("\n".join(lines) + "\n")
        return path


def _toml(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture(scope="session")
def site_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained, signed model and its data, built once per session (copied per test by ``site``)."""
    import numpy as np
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from modelshield.data import load_bundled
    from modelshield.supply_chain.keys import generate_keypair, load_private_key, write_keypair
    from modelshield.supply_chain.signing import sign_model

    root = tmp_path_factory.mktemp("site")
    data = load_bundled("phishing")
    x = data.x.reshape(len(data.x), -1)
    model = LogisticRegression(max_iter=500).fit(x, np.asarray(data.label_names)[data.y])
    path = root / "phishing-lr.skops"
    skops.io.dump(model, path)
    frame = pd.DataFrame(x, columns=list(data.schema.names))
    frame["label"] = np.asarray(data.label_names)[data.y]
    frame.to_csv(root / "train.csv", index=False)
    private, _ = write_keypair(generate_keypair("ed25519"), root / "keys", name="publisher")
    write_keypair(generate_keypair("ed25519"), root / "keys", name="gateway")
    sign_model(path, load_private_key(private), root / "phishing-lr.skops.sig")
    return root


@pytest.fixture
def site(site_template: Path, tmp_path: Path) -> Site:
    import shutil

    root = tmp_path / "gw"
    shutil.copytree(site_template, root)
    return Site(
        root=root,
        model=root / "phishing-lr.skops",
        reference=root / "train.csv",
        publisher_key=root / "keys" / "publisher.key",
        publisher_pub=root / "keys" / "publisher.pub",
        n_features=9,
        n_classes=2,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Running:
    """A gateway served by a real uvicorn server on 127.0.0.1, in a thread of the test process."""

    url: str
    gateway: Any
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.gateway.close()


def start_gateway(config: Path) -> Running:
    """A gateway for a configuration file, under a real uvicorn server on a free port of 127.0.0.1."""
    import uvicorn

    from modelshield.gateway.app import Gateway
    from modelshield.gateway.config import load_config

    gateway = Gateway(load_config(config))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            gateway.app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            gateway.close()
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return Running(f"http://127.0.0.1:{port}", gateway, server, thread)


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Running]]:
    """Start gateways for configuration files (:func:`start_gateway`); stopped after the test."""
    started: list[Running] = []

    def start(config: Path) -> Running:
        running = start_gateway(config)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def make_key(site: Site, client: str, role: str = "client", **kwargs: Any) -> str:
    """A new API key in the site's store, as `gateway keys create` makes it from another process. A running gateway
    sees it after its next snapshot reload: on a miss at most every 0.2 s (the throttle that keeps guessed keys from
    becoming database queries), so this waits that long before handing the key out."""
    from modelshield.gateway.identity import KeyStore, Role

    store = KeyStore(f"sqlite:///{site.root / 'gateway.db'}")
    try:
        secret, _ = store.create(client, Role(role), **kwargs)
    finally:
        store.close()
    time.sleep(0.25)
    return secret
