"""Property-based fuzzing of the running gateway from its own OpenAPI schema (schemathesis): no 5xx, no leaks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import Running, Site, make_key, start_gateway


@pytest.fixture(scope="module")
def fuzzed(site_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, str]]:
    root = tmp_path_factory.mktemp("fuzz") / "gw"
    shutil.copytree(site_template, root)
    site = Site(
        root,
        root / "phishing-lr.skops",
        root / "train.csv",
        root / "keys" / "publisher.key",
        root / "keys" / "publisher.pub",
        9,
        2,
    )
    running = start_gateway(site.config({"limits": {"requests_per_second": 10000.0}}))
    key = make_key(site, "fuzzer", "admin")
    yield running, key
    running.stop()


@pytest.mark.slow
def test_no_server_error_and_no_leak(fuzzed: tuple[Running, str]) -> None:
    """Every operation of the schema, with bodies, paths and queries drawn from it, with and without a valid key."""
    running, key = fuzzed
    schema = schemathesis.openapi.from_dict(running.gateway.fastapi.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    secret_dir = str(running.gateway.config.base)

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            for headers in ({"Authorization": f"Bearer {key}"}, {}):
                response = case.call(base_url=running.url, headers=headers, timeout=10)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500 or response.status_code == 503, (where, response.text)
                text = response.text
                assert "Traceback" not in text and "site-packages" not in text and secret_dir not in text, where
                assert response.headers.get("x-content-type-options") == ["nosniff"], where

        fuzz()
