"""Every prediction has an id: the real model server returns ids (V1 ``ids``, V2 output ``id``), its
payload events carry them, and the real watcher stores the predictions under those ids."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from ctloop.model import load_model
from ctloop.registry import Registry
from tests.helpers_quality import WatcherProcess, post_labels, quality_project
from tests.helpers_serving import ServerProcess, records, training_frame

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ids_from_instances_headers_or_uuid_reach_the_store(tmp_path: Path) -> None:
    project, cfg, version = quality_project(tmp_path)
    w = WatcherProcess(project)
    server = None
    try:
        w.wait_watching()
        raw = yaml.safe_load(project.read_text())
        raw.setdefault("serving", {})["logger"] = {"url": f"{w.url}/events", "flush_seconds": 0.05}
        project.write_text(yaml.safe_dump(raw, sort_keys=False))
        server = ServerProcess(project).wait_ready(cfg.name)
        model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir(version))
        frame = training_frame(seed=3, rows=3)
        recs = records(frame, model.features)
        v1 = f"{server.base}/v1/models/{cfg.name}:predict"
        # 1. ids from the instances (one instance without: request id + row index)
        with_ids = [dict(r, id=f"cust-{i}") for i, r in enumerate(recs)]
        del with_ids[2]["id"]
        r = httpx.post(v1, json={"instances": with_ids}, headers={"x-request-id": "req-a"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["ids"] == ["cust-0", "cust-1", "req-a-2"]
        # 2. no ids, no header: a fresh UUID per request
        r2 = httpx.post(v1, json={"instances": recs}, timeout=10).json()["ids"]
        rid = r2[0].rsplit("-", 1)[0]
        assert len(rid) == 32 and r2 == [f"{rid}-{i}" for i in range(3)]
        # 3. V2: an 'id' input is taken, the output 'id' is BYTES
        inputs = [{"name": f, "datatype": "FP64", "shape": [3], "data": frame[f].astype(float).tolist()}
                  for f in model.numeric_features]
        inputs += [{"name": f, "datatype": "BYTES", "shape": [3], "data": frame[f].astype(str).tolist()}
                   for f in model.categorical_features]
        v2 = f"{server.base}/v2/models/{cfg.name}/infer"
        out = httpx.post(v2, json={"inputs": [*inputs, {"name": "id", "datatype": "BYTES", "shape": [3],
                                                        "data": ["v2-a", "v2-b", "v2-c"]}]}, timeout=10).json()
        ids_out = {o["name"]: o for o in out["outputs"]}["id"]
        assert ids_out["datatype"] == "BYTES" and ids_out["data"] == ["v2-a", "v2-b", "v2-c"]
        out = httpx.post(v2, json={"inputs": inputs}, headers={"x-request-id": "req-b"}, timeout=10).json()
        assert {o["name"]: o for o in out["outputs"]}["id"]["data"] == ["req-b-0", "req-b-1", "req-b-2"]
        # a bad id is a 400 naming it
        bad = httpx.post(v1, json={"instances": [dict(recs[0], id=[1])]}, timeout=10)
        assert bad.status_code == 400 and "instances[0].id" in bad.text
        # the payload events carried the ids: the watcher stored all 12 predictions under them
        expected = ["cust-0", "cust-1", "req-a-2", *r2, "v2-a", "v2-b", "v2-c", "req-b-0", "req-b-1", "req-b-2"]
        deadline = time.monotonic() + 30
        while w.status()["quality"]["stored_predictions"] < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert w.status()["events"].get("joined", 0) == 4
        r = post_labels(w.url, {"model": cfg.name, "labels": [{"id": i, "label": 0} for i in expected]})
        assert r.json()["matched"] == len(expected), r.text
    finally:
        if server is not None:
            server.stop()
        w.stop()
