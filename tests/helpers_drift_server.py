"""A stand-in for KServe's own payload logger: a ``kserve.ModelServer`` that posts one binary-mode
CloudEvent per request and one per response (same ``ce-id``), each in its own POST, as KServe's
logger sidecar does.

It is not ctloop's model server (``ctloop serve`` batches its events, CloudEvents batched content mode)
and no test uses it to prove that events reach the watcher: those tests run ``ctloop serve`` against the
real watcher. ``benchmarks/bench_drift.py`` uses it to load the watcher with KServe-logger traffic. Run:
``python -m tests.helpers_drift_server --ctloop-model-dir D --ctloop-name N --ctloop-port P
--ctloop-watcher URL``.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import httpx
import kserve
import pandas as pd
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from ctloop.model import load_model


class LoggingModel(kserve.Model):
    """A ctloop model behind kserve.Model that posts payload events to a watcher."""

    def __init__(self, name: str, model_dir: str, watcher: str) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.watcher = watcher
        self.client = httpx.AsyncClient(timeout=10)
        self.load()

    def load(self) -> bool:
        self.model = load_model(self.model_dir)
        self.ready = True
        return True

    async def _log(self, kind: str, event_id: str, body: dict[str, Any]) -> None:
        if not self.watcher:  # benchmarks measure the bare server
            return
        attrs = {"type": f"org.kubeflow.serving.inference.{kind}", "source": f"http://localhost/{self.name}",
                 "id": event_id, "inferenceservicename": self.name, "namespace": "default",
                 "component": "predictor", "endpoint": "default", "datacontenttype": "application/json"}
        headers, data = to_binary(CloudEvent(attrs, body))
        r = await self.client.post(self.watcher, headers=headers, content=data)
        r.raise_for_status()

    async def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        event_id = uuid.uuid4().hex
        await self._log("request", event_id, payload)
        proba = self.model.predict_proba(pd.DataFrame.from_records(payload["instances"]))
        response = {"predictions": [float(p) for p in proba]}
        await self._log("response", event_id, response)
        return response


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ctloop-model-dir", required=True)
    p.add_argument("--ctloop-name", required=True)
    p.add_argument("--ctloop-port", type=int, required=True)
    p.add_argument("--ctloop-watcher", required=True)
    a, _ = p.parse_known_args()
    model = LoggingModel(a.ctloop_name, a.ctloop_model_dir, a.ctloop_watcher)
    kserve.ModelServer(http_port=a.ctloop_port, enable_grpc=False, workers=1).start([model])


if __name__ == "__main__":
    main()
