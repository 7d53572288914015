"""Prometheus metrics of one server process (prometheus_client, a registry of its own per app).

Route labels are the route templates (`/predict`), never raw paths, so a scan of random URLs cannot grow the
metric set. With `--workers N` each worker process keeps its own counters and a scrape reads the worker that
answered it.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cnnlab_requests", "HTTP requests answered", ["route", "status"], registry=self.registry
        )
        self.errors = Counter(
            "cnnlab_request_errors", "Requests answered with an error", ["route", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "cnnlab_request_seconds", "Request latency", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "cnnlab_batch_size", "Items per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("cnnlab_queue_depth", "Items waiting for the model", registry=self.registry)
        self.items = Counter("cnnlab_predictions", "Items predicted", registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def error(self, route: str, code: str) -> None:
        self.errors.labels(route, code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
