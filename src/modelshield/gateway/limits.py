"""Per-client limits of the gateway: requests per second, rows per second and a daily row budget, on ``limits``.

    >>> from modelshield.gateway.limits import Limiter, LimitSettings
    >>> limiter = Limiter(LimitSettings(requests_per_second=5, rows_per_second=1000, rows_per_day=100_000))
    >>> limiter.check("acme-batch", rows=32)
    LimitDecision(allowed=True, reason=None, retry_after_s=0, remaining_rows_today=99968)
    >>> limiter.close()

The counters live in the storage of the `limits <https://limits.readthedocs.io>`_ library: ``memory://`` for one
process, ``redis://HOST:PORT`` for several workers or replicas, which then share every counter, budgets included.

**Window model.** Each per-second limit is a sliding-window counter (limits' ``SlidingWindowCounterRateLimiter``)
over a window of ``window_s = ceil(max(burst_s, 1 / rate))`` whole seconds that holds ``floor(rate * window_s)``
units: on average a client gets ``rate`` per second, and it may spend up to ``rate * window_s`` at once (its burst).
The window is at least one second (limits counts whole seconds) and long enough to hold one unit, so a rate of 0.2
requests per second is one request per 5 s. The sliding counter weights the previous window by how much of it is
still inside the window, so there is no double burst at a window boundary, at the cost of two counters per limit.

**Daily budget.** Rows are counted per UTC day, in a counter keyed by client and date (it expires after two days), so
the budget resets at 00:00 UTC and :meth:`Limiter.usage` is "rows used today". A key's own ``rows_per_day``
replaces the default budget; usage is per client, whatever the budget.

**One check, in order.** (1) The request counts against requests per second; a refusal there consumes nothing else.
(2) The rows are added to today's counter with one atomic increment (``INCRBY`` in a Lua script on Redis); if the
total passes the budget, the rows are taken back and the request is refused: a refused request consumes no
budget, and since each increment returns its own total, the rows allowed never exceed the budget however many
workers race (a race can only refuse a request that would just have fitted). (3) The rows count against rows per
second (``hit(cost=rows)``); if refused, the day's rows are taken back too. ``Retry-After`` comes from the refusing
window's reset time (00:00 UTC for the budget), at least 1 s.

**Storage down.** Redis is reached with 0.25 s connect and read timeouts and one immediate retry, so an outage is
noticed in well under a second. Then :meth:`Limiter.check` raises :class:`LimitsUnavailable` (the gateway answers
503: fail closed), or with ``fail_open`` allows the request; either way the outage is logged once, and its end too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from modelshield._extras import require
from modelshield.errors import InvalidParameterError, ModelShieldError

require("limits", extra="serve", feature="The gateway's rate limits")

from limits import RateLimitItemPerSecond  # noqa: E402 - after the check that names the extra
from limits.errors import ConfigurationError, StorageError  # noqa: E402
from limits.storage import MemoryStorage, RedisStorage, Storage  # noqa: E402
from limits.strategies import SlidingWindowCounterRateLimiter  # noqa: E402

__all__ = ["LimitDecision", "LimitSettings", "Limiter", "LimitsUnavailable"]

logger = logging.getLogger(__name__)

_DAY_S = 86_400
_REDIS_SCHEMES = ("redis", "rediss", "redis+unix")
_TIMEOUT_S = 0.25

Reason = Literal["requests per second", "rows per second", "daily row budget"]


class LimitsUnavailable(ModelShieldError):  # noqa: N818 - the name the gateway uses: a state, like StoreUnavailable
    """The limits' storage (Redis) cannot be reached, and the limiter fails closed (the gateway answers 503)."""

    default_remedy = (
        "Check that Redis is up and reachable at the configured URL; to serve without limits while it is down, "
        "opt in to fail_open."
    )


@dataclass(frozen=True)
class LimitSettings:
    """The default limits of every client (a key's ``rows_per_day`` replaces the budget for that client).

    ``burst_s`` is the length of the per-second limits' window (rounded up to whole seconds): a client may spend a
    whole window's allowance at once. ``fail_open`` allows requests while the storage is down, instead of refusing.
    """

    requests_per_second: float
    rows_per_second: float
    rows_per_day: int
    burst_s: float = 1.0
    fail_open: bool = False

    def __post_init__(self) -> None:
        for name in ("requests_per_second", "rows_per_second", "burst_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise InvalidParameterError(f"{name} must be a positive number, got {value!r}.")
        if isinstance(self.rows_per_day, bool) or not isinstance(self.rows_per_day, int) or self.rows_per_day < 0:
            raise InvalidParameterError(f"rows_per_day must be a non-negative integer, got {self.rows_per_day!r}.")


@dataclass(frozen=True)
class LimitDecision:
    """Whether one request may go ahead; if not, why (``reason``) and when to retry (``retry_after_s``, >= 1).

    ``remaining_rows_today`` is the client's budget left after this request, or None where it was not looked at (a
    refusal for requests per second, or a fail-open pass while the storage is down).
    """

    allowed: bool
    reason: Reason | None
    retry_after_s: int
    remaining_rows_today: int | None


def _window(rate: float, burst_s: float) -> RateLimitItemPerSecond:
    window_s = max(1, math.ceil(max(burst_s, 1.0 / rate) - 1e-9))
    return RateLimitItemPerSecond(max(1, math.floor(rate * window_s + 1e-9)), window_s)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class Limiter:
    """Decides, per client, whether a request of ``rows`` rows is within its limits. Safe to share between threads.

    ``storage_url`` is ``memory://`` (this process only) or ``redis://HOST:PORT[/DB]`` (shared); ``prefix`` starts
    every Redis key, so that several gateways can share one Redis.
    """

    def __init__(self, settings: LimitSettings, storage_url: str = "memory://", *, prefix: str = "modelshield") -> None:
        self.settings = settings
        self.storage_url = _redact(storage_url)
        scheme = urlsplit(storage_url).scheme
        try:
            if scheme == "memory":
                self._storage: Storage = MemoryStorage(wrap_exceptions=True)
            elif scheme in _REDIS_SCHEMES:
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                self._storage = RedisStorage(
                    storage_url,
                    key_prefix=prefix,
                    wrap_exceptions=True,
                    socket_connect_timeout=_TIMEOUT_S,
                    socket_timeout=_TIMEOUT_S,
                    retry=Retry(NoBackoff(), 1),  # type: ignore[arg-type]
                )
            else:
                raise ConfigurationError(f"the scheme {scheme!r} is not supported")
        except (ConfigurationError, ValueError) as exc:
            raise InvalidParameterError(
                f"{self.storage_url!r} is not a usable limits storage ({exc}).",
                remedy="Use memory:// for one process, or redis://HOST:PORT for several workers or replicas.",
            ) from exc
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._requests = _window(settings.requests_per_second, settings.burst_s)
        self._requests.namespace = "requests"
        self._rows = _window(settings.rows_per_second, settings.burst_s)
        self._rows.namespace = "rows"
        self._outage_lock = threading.Lock()
        self._outage = False

    def __repr__(self) -> str:
        return f"Limiter({self.settings!r}, {self.storage_url!r})"

    @property
    def max_rows_per_request(self) -> int:
        """The most rows one request can ever have: a larger batch never fits the rows-per-second window."""
        return self._rows.amount

    def check(self, client: str, rows: int, *, rows_per_day: int | None = None) -> LimitDecision:
        """Count a request of ``rows`` rows by ``client`` if its limits allow it, and say whether they did.

        ``rows_per_day`` replaces the default daily budget for this client (its key's budget). Raises
        :class:`LimitsUnavailable` when the storage is down, unless ``fail_open``.
        """
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise InvalidParameterError(f"rows must be a non-negative integer, got {rows!r}.")
        budget = self.settings.rows_per_day if rows_per_day is None else rows_per_day
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise InvalidParameterError(f"rows_per_day must be a non-negative integer, got {budget!r}.")
        try:
            with self._storage_errors():
                return self._check(client, rows, budget)
        except LimitsUnavailable:
            if not self.settings.fail_open:
                raise
            return LimitDecision(allowed=True, reason=None, retry_after_s=0, remaining_rows_today=None)

    def _check(self, client: str, rows: int, budget: int) -> LimitDecision:
        if not self._strategy.hit(self._requests, client):
            return self._refused("requests per second", self._retry_after(self._requests, client), None)
        key = self._day_key(client)
        if rows == 0:
            return LimitDecision(True, None, 0, max(0, budget - self._storage.get(key)))
        used = self._storage.incr(key, 2 * _DAY_S, amount=rows)
        if used > budget:
            self._storage.incr(key, 2 * _DAY_S, amount=-rows)
            return self._refused("daily row budget", _until_midnight(), max(0, budget - (used - rows)))
        if not self._strategy.hit(self._rows, client, cost=rows):
            self._storage.incr(key, 2 * _DAY_S, amount=-rows)
            return self._refused("rows per second", self._retry_after(self._rows, client), budget - (used - rows))
        return LimitDecision(True, None, 0, budget - used)

    @staticmethod
    def _refused(reason: Reason, retry_after_s: int, remaining: int | None) -> LimitDecision:
        return LimitDecision(False, reason, retry_after_s, remaining)

    def _retry_after(self, item: RateLimitItemPerSecond, client: str) -> int:
        reset = self._strategy.get_window_stats(item, client).reset_time
        return min(item.get_expiry(), max(1, math.ceil(reset - time.time())))

    @staticmethod
    def _day_key(client: str) -> str:
        return f"rows-per-day/{client}/{time.strftime('%Y-%m-%d', time.gmtime())}"

    def usage(self, client: str) -> int:
        """The rows ``client`` has used today (UTC); :class:`LimitsUnavailable` when the storage is down."""
        with self._storage_errors():
            return self._storage.get(self._day_key(client))

    def healthy(self) -> bool:
        """Whether the storage answers now (a Redis ``PING``)."""
        return bool(self._storage.check())

    def close(self) -> None:
        """Close the storage's connections."""
        if isinstance(self._storage, RedisStorage):
            self._storage.storage.close()

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        try:
            yield
        except StorageError as exc:
            with self._outage_lock:
                first, self._outage = not self._outage, True
            if first:
                logger.error(
                    "The limits storage %s is unavailable (%s); requests are %s until it is back.",
                    self.storage_url,
                    exc.storage_error,
                    "allowed without limits" if self.settings.fail_open else "refused",
                )
            raise LimitsUnavailable(
                f"The limits storage {self.storage_url} is unavailable: {exc.storage_error}."
            ) from exc
        if self._outage:
            with self._outage_lock:
                ended, self._outage = self._outage, False
            if ended:
                logger.warning("The limits storage %s is available again.", self.storage_url)


def _until_midnight() -> int:
    """Seconds until the next 00:00 UTC, when the daily budgets reset (at least 1)."""
    return max(1, math.ceil(_DAY_S - time.time() % _DAY_S))
