"""Prometheus metrics: what an operator needs to see the server is healthy and batching works.

One registry per app (not the global default), so several apps in one process (tests) do not
collide. HTTP requests are counted by route template and status code by a small ASGI middleware
that sits outside everything else, so even a 413 refused before the body is read is counted.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.http = Counter("cadvlm_http_requests", "HTTP requests by route and status code",
                            ["method", "route", "code"], registry=r)
        self.http_latency = Histogram("cadvlm_http_request_seconds", "HTTP request latency by route",
                                      ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("cadvlm_predictions", "predictions by result status (ok or the invalid reason)",
                                   ["status"], registry=r)
        self.stage = Histogram("cadvlm_prediction_stage_seconds", "time per prediction stage",
                               ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("cadvlm_generate_batch_size", "pictures per generate() call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("cadvlm_generate_batch_seconds", "duration of generate() calls",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("cadvlm_queue_depth", "requests waiting for generation", registry=r)
        self.builds_busy = Gauge("cadvlm_builds_in_progress", "parts being built", registry=r)
        self.results = Gauge("cadvlm_results_stored", "results and jobs whose files are kept", registry=r)
        self.results_removed = Gauge("cadvlm_results_expired", "results removed after their TTL", registry=r)
        self.ready = Gauge("cadvlm_model_ready", "1 once the model is loaded", registry=r)

    def bind(self, batcher_depth, builds_busy, stored, removed) -> None:
        """Gauges read at scrape time from the live objects (callables returning numbers)."""
        self.queue_depth.set_function(batcher_depth)
        self.builds_busy.set_function(builds_busy)
        self.results.set_function(stored)
        self.results_removed.set_function(removed)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_prediction(self, result: dict) -> None:
        self.predictions.labels(result["status"]).inc()
        for stage in ("queue", "generate", "build"):
            self.stage.labels(stage).observe(result["timings_ms"][stage] / 1000.0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI: counts every HTTP response by (method, route template, code) and times it."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        code = {"value": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                code["value"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            self.metrics.http.labels(method, route, str(code["value"])).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - start)
