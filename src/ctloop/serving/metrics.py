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
    artifacts_rejected: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ServingMetrics:
        """Register every metric on ``registry``."""
        return cls(
            requests=Counter("ctloop_serving_requests", "HTTP requests by endpoint and status code",
                             ["endpoint", "code"], registry=registry),
            model_version=Gauge("ctloop_serving_model_version",
                                "Registry version of the model being served (0: not from the registry)",
                                registry=registry),
            swaps=Counter("ctloop_serving_swaps", "Models swapped in", registry=registry),
            swap_failures=Counter("ctloop_serving_swap_failures",
                                  "Candidate models refused (load or smoke prediction failed)",
                                  registry=registry),
            events_sent=Counter("ctloop_serving_payload_events_sent", "Payload events delivered",
                                registry=registry),
            events_dropped=Counter("ctloop_serving_payload_events_dropped",
                                   "Payload events dropped", ["reason"], registry=registry),
            artifacts_rejected=Counter("ctloop_serving_artifacts_rejected",
                                       "Model folders refused because an artifact did not match its recorded "
                                       "digest (nothing was deserialised)", registry=registry),
        )
