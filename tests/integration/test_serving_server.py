"""The model server over real HTTP on 127.0.0.1: predictions, input errors, metrics, payload events."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ctloop.config import load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import free_port, make_project
from tests.helpers_serving import EventSink, ServerProcess, add_version, records, training_frame, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server (champion version 1) logging payload events to a real sink."""
    root = tmp_path_factory.mktemp("serving")
    project = make_project(root / "proj", days=2, rows_per_day=50)
    sink = EventSink()
    write_config(project, {"max_body_bytes": 4096, "logger": {"url": sink.url, "flush_seconds": 0.05}})
    cfg = load_config(project)
    version = add_version(cfg, root, seed=0)
    model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir(version))
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        yield {"server": server, "cfg": cfg, "model": model, "sink": sink, "version": version}
    finally:
        server.stop()
        sink.stop()


def _v1(served: Any, body: Any, **kw: Any) -> httpx.Response:
    url = f"{served['server'].base}/v1/models/{served['cfg'].name}:predict"
    if isinstance(body, bytes | str):
        return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10, **kw)
    return httpx.post(url, json=body, timeout=10, **kw)


def _v2(served: Any, body: Any) -> httpx.Response:
    url = f"{served['server'].base}/v2/models/{served['cfg'].name}/infer"
    if isinstance(body, bytes | str):
        return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
    return httpx.post(url, json=body, timeout=10)


def _v2_body(model: Any, frame: Any) -> dict[str, Any]:
    inputs = [{"name": f, "datatype": "FP64", "shape": [len(frame)], "data": frame[f].astype(float).tolist()}
              for f in model.numeric_features]
    inputs += [{"name": f, "datatype": "BYTES", "shape": [len(frame)], "data": frame[f].astype(str).tolist()}
               for f in model.categorical_features]
    return {"id": "req-1", "inputs": inputs}


def test_v1_records_and_rows_equal_predict_proba(served: Any) -> None:
    model = served["model"]
    frame = training_frame(seed=5, rows=7)
    expected = model.predict_proba(frame)
    r = _v1(served, {"instances": records(frame, model.features)})
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-12)
    assert body["labels"] == [int(p >= 0.5) for p in expected]
    assert body["model_version"] == str(served["version"])
    rows = [list(rec.values()) for rec in records(frame, model.features)]
    r2 = _v1(served, {"instances": rows})
    assert r2.status_code == 200, r2.text
    np.testing.assert_allclose(r2.json()["predictions"], expected, rtol=1e-12)


def test_v2_named_inputs_equal_predict_proba_and_metadata(served: Any) -> None:
    model = served["model"]
    frame = training_frame(seed=6, rows=5)
    r = _v2(served, _v2_body(model, frame))
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    np.testing.assert_allclose(out["probability"]["data"], model.predict_proba(frame), rtol=1e-12)
    assert out["label"]["datatype"] == "INT64" and out["label"]["shape"] == [5]
    assert r.json()["model_version"] == str(served["version"])
    meta = httpx.get(f"{served['server'].base}/v2/models/{served['cfg'].name}", timeout=10).json()
    assert [i["name"] for i in meta["inputs"]] == model.features
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["region"] == "BYTES"
    assert [o["name"] for o in meta["outputs"]] == ["probability", "label", "id"]


def _record(served: Any) -> dict[str, Any]:
    return records(training_frame(seed=1, rows=1), served["model"].features)[0]


@pytest.mark.parametrize("case", ["v1_missing", "v1_type", "v1_json", "v1_shape", "v1_not_list",
                                  "v2_missing", "v2_type", "v2_json", "v2_shape", "v2_values"])
def test_input_errors_are_400_naming_the_field(served: Any, case: str) -> None:
    model = served["model"]
    rec = _record(served)
    frame = training_frame(seed=1, rows=2)
    if case.startswith("v1"):
        if case == "v1_missing":
            rec.pop("income")
            body, field = {"instances": [rec]}, "instances[0].income"
        elif case == "v1_type":
            rec["age"] = "forty"
            body, field = {"instances": [rec]}, "instances[0].age"
        elif case == "v1_json":
            body, field = '{"instances": [', "body"
        elif case == "v1_shape":
            body, field = {"instances": [list(rec.values())[:-2]]}, "instances[0]"
        else:
            body, field = {"instances": {"age": 1}}, "instances"
        r = _v1(served, body)
    else:
        v2 = _v2_body(model, frame)
        if case == "v2_missing":
            v2["inputs"] = [i for i in v2["inputs"] if i["name"] != "plan"]
            field = "inputs.plan"
        elif case == "v2_type":
            next(i for i in v2["inputs"] if i["name"] == "age")["datatype"] = "BYTES"
            field = "inputs.age"
        elif case == "v2_shape":
            next(i for i in v2["inputs"] if i["name"] == "income")["shape"] = [3]
            field = "inputs.income"
        else:
            next(i for i in v2["inputs"] if i["name"] == "balance")["data"][1] = "lots"
            field = "inputs.balance"
        r = _v2(served, '{"inputs": [' if case == "v2_json" else v2)
        field = "body" if case == "v2_json" else field
    assert r.status_code == 400, (case, r.status_code, r.text)
    assert field in r.json()["error"], (case, r.json())


def test_oversize_body_is_413(served: Any) -> None:
    rec = _record(served)
    big = {"instances": [rec] * 200}
    r = _v1(served, big)
    assert r.status_code == 413, r.text
    assert "max_body_bytes" in r.json()["error"]

    def chunks() -> Any:  # no content-length: the limit applies while streaming
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    r2 = httpx.post(f"{served['server'].base}/v2/models/{served['cfg'].name}/infer", content=chunks(),
                    headers={"content-type": "application/json"}, timeout=10)
    assert r2.status_code == 413, r2.text


def test_metrics_have_kserve_histograms_status_counter_and_version(served: Any) -> None:
    assert _v1(served, {"instances": [_record(served)]}).status_code == 200
    assert _v1(served, {"instances": "x"}).status_code == 400
    server = served["server"]
    assert server.metric("request_predict_seconds_count") >= 1
    assert server.metric('ctloop_serving_requests_total{code="200",endpoint="v1_predict"}') >= 1
    assert server.metric('ctloop_serving_requests_total{code="400",endpoint="v1_predict"}') >= 1
    assert server.metric("ctloop_serving_model_version") == served["version"]


def test_payload_events_reach_sink_with_kserve_headers(served: Any) -> None:
    sink = served["sink"]
    ids = [f"evt-{i}" for i in range(3)]
    sent = []
    for i in ids:
        body = {"instances": [_record(served)]}
        r = _v1(served, body, headers={"x-request-id": i})
        assert r.status_code == 200
        sent.append((body, r.json()))
    def pairs() -> dict[str, dict[str, Any]]:
        by_id: dict[str, dict[str, Any]] = {}
        for ev in sink.cloudevents():
            by_id.setdefault(ev["id"], {})[ev["type"]] = ev
        return by_id

    deadline = time.monotonic() + 20
    while not all(len(pairs().get(i, {})) == 2 for i in ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    by_id = pairs()
    deliveries = sink.snapshot()
    assert all(h["content-type"] == "application/cloudevents-batch+json" for h, _ in deliveries)
    for i, (req_body, resp_body) in zip(ids, sent, strict=True):
        pair = by_id[i]
        assert set(pair) == {"org.kubeflow.serving.inference.request",
                             "org.kubeflow.serving.inference.response"}
        req = pair["org.kubeflow.serving.inference.request"]
        resp = pair["org.kubeflow.serving.inference.response"]
        assert req["data"] == req_body
        assert resp["data"] == resp_body
        for ev in (req, resp):
            assert ev["specversion"] == "1.0"
            assert ev["source"] == "ctloop-serving"
            assert ev["inferenceservicename"] == served["cfg"].name
            assert ev["namespace"] == "ctloop"
            assert ev["component"] == "predictor"
            assert ev["endpoint"] == "default"
            assert ev["datacontenttype"] == "application/json"
    events = [(None, json.dumps(ev["data"]).encode()) for ev in sink.cloudevents()]
    # rejected requests are not logged as payload
    assert all(json.loads(b) != {"instances": "x"} for _, b in events)


def test_dead_sink_does_not_fail_requests(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens here
    write_config(project, {"logger": {"url": dead, "flush_seconds": 0.05, "timeout_seconds": 0.5}})
    cfg = load_config(project)
    add_version(cfg, tmp_path, seed=0)
    server = ServerProcess(project)
    try:
        server.wait_ready(cfg.name)
        model = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir("champion"))
        body = {"instances": records(training_frame(seed=2, rows=3), model.features)}
        codes = [httpx.post(f"{server.base}/v1/models/{cfg.name}:predict", json=body, timeout=10).status_code
                 for _ in range(20)]
        assert codes == [200] * 20
        deadline = time.monotonic() + 20
        dropped = "ctloop_serving_payload_events_dropped_total"
        while server.metric(dropped) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.metric("ctloop_serving_payload_events_dropped_total") >= 1
        assert server.metric("ctloop_serving_payload_events_sent_total") == 0
    finally:
        server.stop()
