"""Fuzz the V1/V2 decoders (the real model server over HTTP) and the event parser (the real watcher):
every generated body gets a 2xx or a 4xx, never a 5xx, and the server still answers afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctloop.config import load_config
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import make_project
from tests.helpers_drift import FEATURES, binary_event, train_model
from tests.helpers_serving import ServerProcess, add_version
from tests.integration.test_watcher_service import NAME, Watcher, make_cfg, publish, wait_until

pytestmark = [pytest.mark.security, pytest.mark.integration]
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=8))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                      max_leaves=12)


def _records(features: list[str]) -> st.SearchStrategy[Any]:
    record = st.fixed_dictionaries({f: values for f in features})
    row = st.lists(values, min_size=len(features), max_size=len(features))
    return st.fixed_dictionaries({"instances": st.lists(record, max_size=4) | st.lists(row, max_size=4) | values})


def _many(features: list[str]) -> st.SearchStrategy[Any]:
    """V1 bodies with their instances repeated up to 40 times (past the watcher's small-batch path)."""
    record = st.fixed_dictionaries({f: values for f in features})
    return st.tuples(st.lists(record, min_size=1, max_size=2), st.integers(1, 40)).map(
        lambda t: {"instances": t[0] * t[1]})


def _v2(features: list[str]) -> st.SearchStrategy[Any]:
    tensor = st.fixed_dictionaries({
        "name": st.sampled_from([*features, "bogus"]),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "NOPE"]),
        "shape": st.lists(st.integers(-2, 4), max_size=3),
        "data": values,
    })
    return st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=len(features) + 1)}) | values


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz-serving")
    project = make_project(root / "proj", days=2, rows_per_day=50)
    cfg = load_config(project)
    add_version(cfg, root, seed=0)
    features = load_model(Registry(cfg.registry.uri, cfg.name).local_model_dir("champion")).features
    proc = ServerProcess(project)
    try:
        proc.wait_ready(cfg.name)
        with httpx.Client(base_url=proc.base, timeout=10) as client:
            yield {"client": client, "name": cfg.name, "features": features, "proc": proc}
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def watcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watcher]:
    root = tmp_path_factory.mktemp("fuzz-watcher")
    cfg = make_cfg(root)
    publish(cfg, train_model(root / "m"))
    with Watcher(cfg) as w:
        wait_until(lambda: w.status()["version"] == 1, "champion to load")
        yield w


def _post(client: httpx.Client, url: str, body: Any) -> int:
    return client.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"}).status_code


def test_fuzz_v1_and_v2_decoders(server: dict[str, Any]) -> None:
    client, name, features = server["client"], server["name"], server["features"]

    @FUZZ
    @given(v1=_records(features), v2=_v2(features))
    def run(v1: Any, v2: Any) -> None:
        code = _post(client, f"/v1/models/{name}:predict", v1)
        assert code < 500 and code != 0, (code, v1)
        code = _post(client, f"/v2/models/{name}/infer", v2)
        assert code < 500, (code, v2)

    run()
    assert client.get("/v2/health/ready").status_code == 200
    assert server["proc"].proc.poll() is None


def test_fuzz_event_parser(watcher: Watcher) -> None:
    event = st.fixed_dictionaries({
        "specversion": st.sampled_from(["1.0", "0.3", "x"]),
        "id": st.text(max_size=6),
        "type": st.sampled_from(["org.kubeflow.serving.inference.request",
                                 "org.kubeflow.serving.inference.response", "other"]),
        "source": st.text(max_size=6),
        "inferenceservicename": st.sampled_from([NAME, "other", ""]),
        "data": _many(FEATURES) | _records(FEATURES) | values,
    })

    @FUZZ
    @given(single=_many(FEATURES) | _records(FEATURES) | values, kind=st.sampled_from(["request", "response"]),
           batch=st.lists(event | values, max_size=4))
    def run(single: Any, kind: str, batch: Any) -> None:
        h, _ = binary_event(kind, {}, NAME)
        code = watcher.post(h, json.dumps(single).encode()).status_code
        assert code < 500, (code, single)
        code = watcher.post({"content-type": "application/cloudevents-batch+json"},
                            json.dumps(batch).encode()).status_code
        assert code < 500, (code, batch)

    run()
    assert httpx.get(f"{watcher.url}/healthz").status_code == 200


def test_fuzz_raw_bytes_never_500(server: dict[str, Any], watcher: Watcher, tmp_path: Path) -> None:
    client, name = server["client"], server["name"]

    @FUZZ
    @given(raw=st.binary(max_size=64))
    def run(raw: bytes) -> None:
        assert client.post(f"/v1/models/{name}:predict", content=raw,
                           headers={"content-type": "application/json"}).status_code < 500
        h, _ = binary_event("request", {}, NAME)
        assert watcher.post(h, raw).status_code < 500

    run()
