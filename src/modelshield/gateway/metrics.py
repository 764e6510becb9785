"""The gateway's Prometheus metrics, in a registry of its own (no process-wide default registry is touched).

Requests by client and status, latency, rejections by reason, guard decisions, refused model swaps, and the model
served (an info-style gauge labelled with its name, version and digest). Client labels are key names, which an
admin chose, so their number is bounded by the keys issued; requests without valid credentials count as
``unauthenticated``.

With several uvicorn workers each worker exports its own series (scrape each, or sum across ``instance``).
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    """The gateway's counters and histograms; :meth:`render` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelshield_requests",
            "Inference requests by client and HTTP status.",
            ["client", "status"],
            registry=self.registry,
        )
        self.others = Counter(
            "modelshield_http_requests",
            "Requests to the metadata, metrics and admin routes (not inference, not health checks), by status.",
            ["status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelshield_request_seconds",
            "Inference request latency inside the gateway.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.rejections = Counter(
            "modelshield_rejections", "Requests refused, by reason.", ["reason"], registry=self.registry
        )
        self.guards = Counter(
            "modelshield_guard_decisions",
            "Guard decisions on requests, by guard and action.",
            ["guard", "action"],
            registry=self.registry,
        )
        self.swaps_refused = Counter(
            "modelshield_model_swaps_refused",
            "New model versions refused (not verified or not loadable).",
            registry=self.registry,
        )
        self.model = Gauge(
            "modelshield_model_info",
            "The model served (1 for the current version).",
            ["name", "version", "digest"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "modelshield_alerts",
            "Alerts raised by the monitors on live traffic (before deduplication).",
            ["detector", "technique"],
            registry=self.registry,
        )
        self.monitor_failures = Counter(
            "modelshield_monitor_failures",
            "Requests or alerts the monitors failed on (the requests were answered regardless).",
            registry=self.registry,
        )
        self._lock = threading.Lock()

    def request(self, client: str, status: int, seconds: float, reason: str | None = None) -> None:
        self.requests.labels(client=client, status=str(status)).inc()
        self.latency.observe(seconds)
        if reason is not None:
            self.rejections.labels(reason=reason).inc()

    def other(self, status: int) -> None:
        self.others.labels(status=str(status)).inc()

    def guard(self, guard: str, action: str) -> None:
        self.guards.labels(guard=guard, action=action).inc()

    def swap_refused(self) -> None:
        self.swaps_refused.inc()

    def model_info(self, name: str, version: str, digest: str) -> None:
        with self._lock:
            self.model.clear()
            self.model.labels(name=name, version=version, digest=digest).set(1)

    def alert(self, detector: str, technique: str) -> None:
        self.alerts.labels(detector=detector, technique=technique).inc()

    def render(self, extra: str = "") -> bytes:
        """The exposition text, with ``extra`` (the drift monitor's gauges, rendered by it) appended."""
        return generate_latest(self.registry) + extra.encode()
