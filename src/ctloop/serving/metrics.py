"""Prometheus metrics of the model server, on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class ServingMetrics:
    """The server's own metrics (KServe's latency histograms live in the global registry)."""

    requests: Counter
    model_version: Gauge
    swaps: Counter
    swap_failures: Counter
    events_sent: Counter
    events_dropped: Counter
    fast_path: Gauge
    payload_posts: Counter
    batches: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ServingMetrics:
        """Register every metric on ``registry``."""
        return cls(
            requests=Counter("ctloop_serving_requests", "HTTP requests by endpoint and status code",
                             ["endpoint", "code"], registry=registry),
            model_version=Gauge("ctloop_serving_model_version",
                                "Registry version of the model being served (0: not from the registry)",
                                registry=registry, multiprocess_mode="livemin"),
            swaps=Counter("ctloop_serving_swaps", "Models swapped in", registry=registry),
            swap_failures=Counter("ctloop_serving_swap_failures",
                                  "Candidate models refused (load or smoke prediction failed)",
                                  registry=registry),
            events_sent=Counter("ctloop_serving_payload_events_sent", "Payload events delivered",
                                registry=registry),
            events_dropped=Counter("ctloop_serving_payload_events_dropped",
                                   "Payload events dropped", ["reason"], registry=registry),
            fast_path=Gauge("ctloop_serving_fast_path",
                            "1 when the version is served on the compiled fast path, 0 on the reference path",
                            ["version"], registry=registry, multiprocess_mode="livemin"),
            payload_posts=Counter("ctloop_serving_payload_posts", "HTTP POSTs of payload events to the sink",
                                  registry=registry),
            batches=Counter("ctloop_serving_batches", "Model calls made by the micro-batcher", registry=registry),
        )

    def set_fast_path(self, version: int | None, on: bool, previous: int | None = None) -> None:
        """Set ``ctloop_serving_fast_path{version}`` and drop the previous version's series."""
        if previous is not None and previous != version:
            try:
                self.fast_path.remove(str(previous))
            except KeyError:
                pass
        self.fast_path.labels(version=str(version or 0)).set(1.0 if on else 0.0)
