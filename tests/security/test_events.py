"""Security regressions of the watcher's ``/events``: credentials, model names, replays, per-source rate,
distinct sources before drift counts, per-item rejection in batches, deep nesting and non-scalar values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import ProjectConfig
from tests.helpers_drift import FEATURES, binary_event, records, stream, train_model
from tests.integration.test_watcher_service import NAME, Watcher, make_cfg, publish, wait_until

pytestmark = [pytest.mark.security, pytest.mark.integration]
BATCH = {"content-type": "application/cloudevents-batch+json"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_model(tmp_path_factory.mktemp("events-model") / "m")


def _watcher(cfg: ProjectConfig, model_dir: Path) -> Watcher:
    publish(cfg, model_dir)
    w = Watcher(cfg).__enter__()
    wait_until(lambda: w.status()["version"] == 1, "champion to load")
    return w


@pytest.fixture
def watch(tmp_path: Path, model_dir: Path) -> Iterator[Any]:
    started: list[Watcher] = []

    def start(**drift: Any) -> Watcher:
        w = _watcher(make_cfg(tmp_path / f"w{len(started)}", **drift), model_dir)
        started.append(w)
        return w

    yield start
    for w in started:
        w.__exit__(None, None, None)


def _structured(event_id: str, body: dict[str, Any], source: str = "pod-a") -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": "org.kubeflow.serving.inference.request",
            "source": source, "inferenceservicename": NAME, "datacontenttype": "application/json", "data": body}


def _rows_seen(w: Watcher) -> int:
    return int(w.status()["windows"]["rows_seen"])


def test_events_require_the_token_when_configured(watch: Any, tmp_path: Path) -> None:
    token = tmp_path / "events-token"
    token.write_text("events-s3cret\n")
    w = watch(events_token_file=str(token))
    h, b = binary_event("request", {"instances": records(stream(5, seed=1))}, NAME)
    assert w.post(h, b).status_code == 401
    assert w.post({**h, "authorization": "Bearer nope"}, b).status_code == 401
    assert _rows_seen(w) == 0
    assert w.post({**h, "authorization": "Bearer events-s3cret"}, b).status_code == 202
    assert _rows_seen(w) == 5
    assert w.metric("ctloop_watcher_events_total", outcome="unauthorized") == 2


def test_events_must_name_the_model(watch: Any) -> None:
    w = watch()
    h, b = binary_event("request", {"instances": records(stream(5, seed=1))}, NAME)
    del h["ce-inferenceservicename"]
    r = w.post(h, b)
    assert r.status_code == 400 and "ce-inferenceservicename" in r.json()["error"]
    assert _rows_seen(w) == 0


def test_replayed_event_id_is_counted_once(watch: Any) -> None:
    w = watch()
    h, b = binary_event("request", {"instances": records(stream(4, seed=2))}, NAME, event_id="same-id")
    for _ in range(30):
        assert w.post(h, b).status_code == 202
    assert _rows_seen(w) == 4
    assert w.metric("ctloop_watcher_events_total", outcome="duplicate") == 29
    rh, rb = binary_event("response", {"predictions": [0.1, 0.2, 0.3, 0.4]}, NAME, event_id="same-id")
    assert w.post(rh, rb).json()["accepted"] == 1  # the response of the same id is its own event


def test_rate_limit_per_source(watch: Any) -> None:
    w = watch(max_rows_per_second=1.0)  # burst: one window (500 rows), then ~1 row/s
    body = {"instances": records(stream(300, seed=3))}
    ok = [_structured(f"a{i}", body) for i in range(2)]
    r = w.post(BATCH, json.dumps(ok).encode())
    assert r.status_code == 202 and r.json()["accepted"] == 1 and r.json()["dropped"] == 1
    other = [_structured("b0", body, source="pod-b")]
    assert w.post(BATCH, json.dumps(other).encode()).json()["accepted"] == 1
    assert w.metric("ctloop_watcher_events_total", outcome="rate_limited") == 1
    assert _rows_seen(w) == 600


def test_one_source_cannot_raise_drift_when_min_sources_is_set(watch: Any) -> None:
    nulls = {"instances": [dict.fromkeys(FEATURES) for _ in range(250)]}

    def attack(w: Watcher, sources: list[str]) -> None:
        for i in range(8):
            event = _structured(f"n{i}", nulls, source=sources[i % len(sources)])
            r = w.post(BATCH, json.dumps([event]).encode())
            assert r.status_code == 202 and r.json()["accepted"] == 1, r.text

    lone = watch(min_sources=2)
    attack(lone, ["attacker"])
    assert lone.metric("ctloop_drift_share", model=NAME) == 0.0
    assert lone.metric("ctloop_watcher_events_total", outcome="insufficient_sources") == 3  # windows 2..4
    # (window 1 is not drifted yet: drift must persist for consecutive_windows: 2)
    fleet = watch(min_sources=2)
    attack(fleet, ["pod-a", "pod-b"])  # the same rows from two pods do count
    assert (fleet.metric("ctloop_drift_share", model=NAME) or 0.0) > 0.5


def test_bad_item_in_a_batch_drops_only_itself(watch: Any) -> None:
    w = watch()
    good = {"instances": records(stream(3, seed=4))}
    bad = {"instances": [{**good["instances"][0], "plan": {"nested": ["object"]}}]}
    batch = [_structured("g1", good), _structured("x1", bad), "not an event", _structured("g2", good)]
    r = w.post(BATCH, json.dumps(batch).encode())
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 2 and r.json()["rejected"] == 2
    assert _rows_seen(w) == 6


def test_non_scalar_values_and_deep_nesting_are_400(watch: Any) -> None:
    w = watch()
    rec = records(stream(100, seed=5))  # over the small-slice path: pandas' index sees the objects
    for value in ({"a": 1}, [1, 2]):
        rows = [{**r, "plan": value} for r in rec]
        r = w.post(*binary_event("request", {"instances": rows}, NAME))
        assert r.status_code == 400 and "'plan'" in r.json()["error"], r.text
    deep = b"[" * 100_000 + b"]" * 100_000
    r = w.post(BATCH, deep)
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    h, _ = binary_event("request", {}, NAME)
    assert w.post(h, b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}").status_code == 400
    assert w.post({"content-type": "application/cloudevents+json"}, deep).status_code == 400
    assert _rows_seen(w) == 0
    assert w.post(*binary_event("request", {"instances": rec[:2]}, NAME)).status_code == 202
