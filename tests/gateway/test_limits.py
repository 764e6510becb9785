"""The gateway's limits: request and row rates, daily budgets, Retry-After, Redis shared by workers, Redis down."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from modelshield.errors import InvalidParameterError
from modelshield.gateway.limits import LimitDecision, Limiter, LimitSettings, LimitsUnavailable

DOWN = "redis://:hunter2@127.0.0.1:1"  # nothing listens on port 1


def _client() -> str:
    return f"test-{secrets.token_hex(6)}"


def _fresh_window(window_s: float = 1.0) -> None:
    """Start a rate test away from the end of a window: the memory storage's windows are aligned to the clock, and
    the sliding counter's estimate just after a boundary (the previous window's count, weighted and floored) lets
    one more through than a test that counts exactly would expect."""
    into = time.time() % window_s
    if into > window_s - 0.2:
        time.sleep(window_s - into + 0.01)


def _settings(**overrides: float) -> LimitSettings:
    values = {"requests_per_second": 1000.0, "rows_per_second": 1e6, "rows_per_day": 1_000_000, **overrides}
    return LimitSettings(
        requests_per_second=values["requests_per_second"],
        rows_per_second=values["rows_per_second"],
        rows_per_day=int(values["rows_per_day"]),
        burst_s=values.get("burst_s", 1.0),
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def storage_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


def _delete_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def prefix(storage_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its Redis keys are deleted after."""
    prefix = f"mstest-{secrets.token_hex(4)}"
    yield prefix
    if storage_url.startswith("redis"):
        _delete_keys(storage_url, prefix)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own on Redis; its keys are deleted after."""
    prefix = f"mstest-{secrets.token_hex(4)}"
    yield prefix
    _delete_keys(redis_url, prefix)


def _limiter(settings: LimitSettings, storage_url: str, prefix: str) -> Limiter:
    return Limiter(settings, storage_url, prefix=prefix)


def test_requests_per_second(storage_url: str, prefix: str) -> None:
    limiter = _limiter(_settings(requests_per_second=5), storage_url, prefix)
    client = _client()
    _fresh_window()
    decisions = [limiter.check(client, 1) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    refused = decisions[-1]
    assert refused.reason == "requests per second" and refused.retry_after_s == 1
    assert refused.remaining_rows_today is None
    assert limiter.usage(client) == 5  # the refused request's row was not counted
    assert limiter.check(_client(), 1).allowed  # per client
    limiter.close()


def test_rows_per_second(storage_url: str, prefix: str) -> None:
    limiter = _limiter(_settings(rows_per_second=100, rows_per_day=1000), storage_url, prefix)
    client = _client()
    _fresh_window()
    assert limiter.check(client, 60) == LimitDecision(True, None, 0, 940)
    refused = limiter.check(client, 60)
    assert (refused.allowed, refused.reason, refused.remaining_rows_today) == (False, "rows per second", 940)
    assert 1 <= refused.retry_after_s <= 1
    assert limiter.usage(client) == 60  # the refused rows were taken back from the budget
    assert limiter.check(client, 40).allowed
    assert limiter.max_rows_per_request == 100
    limiter.close()


def test_daily_budget(storage_url: str, prefix: str) -> None:
    limiter = _limiter(_settings(rows_per_day=100), storage_url, prefix)
    client = _client()
    assert limiter.check(client, 40).remaining_rows_today == 60
    assert limiter.check(client, 40).remaining_rows_today == 20
    refused = limiter.check(client, 40)
    assert (refused.allowed, refused.reason, refused.remaining_rows_today) == (False, "daily row budget", 20)
    seconds_to_midnight = 86400 - time.time() % 86400
    assert abs(refused.retry_after_s - seconds_to_midnight) <= 2 and refused.retry_after_s >= 1
    assert limiter.usage(client) == 80  # a refused request consumes no budget
    assert limiter.check(client, 20) == LimitDecision(True, None, 0, 0)
    assert limiter.check(client, 0) == LimitDecision(True, None, 0, 0)  # metadata requests cost no rows
    assert not limiter.check(client, 1).allowed
    limiter.close()


def test_per_key_budget(storage_url: str, prefix: str) -> None:
    limiter = _limiter(_settings(rows_per_day=100), storage_url, prefix)
    client = _client()
    assert limiter.check(client, 10, rows_per_day=10).remaining_rows_today == 0
    refused = limiter.check(client, 1, rows_per_day=10)
    assert refused.reason == "daily row budget"
    assert limiter.check(client, 90).remaining_rows_today == 0  # the same usage under the default budget
    assert limiter.check(client, 5, rows_per_day=1000).remaining_rows_today == 895
    limiter.close()


def test_window_model() -> None:
    # a rate below one per second gets a window long enough to hold one unit
    slow = Limiter(_settings(requests_per_second=0.5, rows_per_second=0.2))
    assert slow.max_rows_per_request == 1
    client = _client()
    _fresh_window(2.0)
    assert slow.check(client, 1).allowed
    refused = slow.check(client, 1)
    assert refused.reason == "requests per second" and 1 <= refused.retry_after_s <= 2
    # burst_s widens the window: rate x window at once
    assert Limiter(_settings(rows_per_second=100, burst_s=2.5)).max_rows_per_request == 300


def test_bad_arguments() -> None:
    for bad in [{"requests_per_second": 0}, {"rows_per_second": -1}, {"burst_s": float("inf")}, {"rows_per_day": -1}]:
        with pytest.raises(InvalidParameterError):
            _settings(**bad)
    limiter = Limiter(_settings())
    for rows in (-1, 1.5, True):
        with pytest.raises(InvalidParameterError):
            limiter.check("a", rows)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        limiter.check("a", 1, rows_per_day=-5)
    for url in ("memcached://127.0.0.1:11211", "nope", "http://127.0.0.1/"):
        with pytest.raises(InvalidParameterError, match="not a usable limits storage"):
            Limiter(_settings(), url)


def test_memory_storage_is_per_limiter() -> None:
    a, b = Limiter(_settings(rows_per_day=10)), Limiter(_settings(rows_per_day=10))
    assert a.check("acme", 10).allowed and b.check("acme", 10).allowed
    assert a.healthy() and b.healthy()


# -- Redis ------------------------------------------------------------------------------------------------------------


@pytest.mark.services
def test_two_limiters_share_redis(redis_url: str, redis_prefix: str) -> None:
    prefix = redis_prefix
    settings = _settings(requests_per_second=4, rows_per_day=50)
    a, b = Limiter(settings, redis_url, prefix=prefix), Limiter(settings, redis_url, prefix=prefix)
    client = _client()
    assert [(a if i % 2 else b).check(client, 1).allowed for i in range(5)] == [True] * 4 + [False]
    assert a.usage(client) == b.usage(client) == 4
    assert a.healthy() and b.healthy()
    client = _client()

    for limiter in (a, b):
        limiter.close()

    settings = _settings(rows_per_day=50)
    a, b = Limiter(settings, redis_url, prefix=prefix), Limiter(settings, redis_url, prefix=prefix)
    allowed = sum(7 for i in range(20) if (a if i % 2 else b).check(client, 7).allowed)
    assert allowed == 49  # seven batches of 7 fit in 50, alternating between the two
    assert a.usage(client) == 49
    for limiter in (a, b):
        limiter.close()


_WORKER = """
import json, sys
from modelshield.gateway.limits import Limiter, LimitSettings
url, prefix, client = sys.argv[1:4]
limiter = Limiter(LimitSettings(requests_per_second=1e6, rows_per_second=1e9, rows_per_day=1000), url, prefix=prefix)
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
print(json.dumps([limiter.check(client, 7).allowed for _ in range(200)]))
limiter.close()
"""


@pytest.mark.services
def test_two_processes_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    prefix, client = redis_prefix, _client()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, prefix, client],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:  # both go at once
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    allowed_rows = 7 * sum(sum(result) for result in results)
    assert 1000 - 7 < allowed_rows <= 1000  # the budget, and no more, within one batch
    assert all(any(result) for result in results)  # both processes took part
    limiter = Limiter(_settings(), redis_url, prefix=prefix)
    assert limiter.usage(client) == allowed_rows  # refused batches were all taken back
    limiter.close()


def test_redis_down_fails_closed_quickly(caplog: pytest.LogCaptureFixture) -> None:
    limiter = Limiter(_settings(), DOWN)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="modelshield.gateway.limits"):
        for _ in range(3):
            with pytest.raises(LimitsUnavailable) as caught:
                limiter.check("acme", 1)
        with pytest.raises(LimitsUnavailable):
            limiter.usage("acme")
    print(f"three refused checks and a usage with Redis down: {time.monotonic() - started:.3f} s")
    assert not limiter.healthy()
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(limiter) and "***" in str(caught.value)
    assert "fail_open" in caught.value.remedy
    assert len(caplog.records) == 1  # logged once per outage
    assert "hunter2" not in caplog.text
    limiter.close()


def test_redis_down_fails_open_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    settings = LimitSettings(requests_per_second=1, rows_per_second=1, rows_per_day=1, fail_open=True)
    limiter = Limiter(settings, DOWN)
    with caplog.at_level(logging.ERROR, logger="modelshield.gateway.limits"):
        decisions = [limiter.check("acme", 1) for _ in range(3)]
    assert decisions == [LimitDecision(True, None, 0, None)] * 3
    assert len(caplog.records) == 1 and "allowed without limits" in caplog.text
    limiter.close()
