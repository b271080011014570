"""kill -9 of the real watcher mid-stream loses no acknowledged prediction (prediction store, SQLite WAL)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from ctloop.config import load_config
from ctloop.quality.store import PredictionStore
from tests.helpers_quality import WatcherProcess, event_pair, post_labels, quality_project

pytestmark = [pytest.mark.integration]
ROWS = 25


def test_kill9_mid_stream_keeps_every_acknowledged_prediction(tmp_path: Path) -> None:
    project, cfg, version = quality_project(tmp_path)
    template = event_pair(cfg, [f"t-{i}" for i in range(ROWS)], version)  # bodies reused, ids rewritten
    w = WatcherProcess(project)
    acked: list[str] = []
    sent = threading.Event()
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=5) as client:
            for n in range(100_000):
                if stop.is_set():
                    return
                ids = [f"e{n}-{i}" for i in range(ROWS)]
                pair = [(dict(h, **{"ce-id": f"evt-{n}"}), b.replace(b'"t-', f'"e{n}-'.encode()))
                        for h, b in template]
                try:
                    for headers, body in pair:
                        r = client.post(f"{w.url}/events", content=body, headers=headers)
                        if r.status_code != 202:
                            return
                except httpx.HTTPError:
                    return  # the watcher is gone: this pair was not acknowledged
                acked.extend(ids)
                if n == 40:
                    sent.set()

    try:
        w.wait_watching()
        t = threading.Thread(target=stream)
        t.start()
        assert sent.wait(60), w.log()
        w.kill9()  # mid-stream: the streamer is still posting
        stop.set()
        t.join(30)
        assert len(acked) >= 41 * ROWS
        w = WatcherProcess(project)
        w.wait_watching()
        q = w.status()["quality"]
        assert q["stored_predictions"] >= len(acked)
        store = PredictionStore(load_config(project).monitoring.labels.store)
        try:
            missing = [i for i in acked if store.get(i) is None]
            assert missing == []
            got = store.get(acked[-1])
            assert got is not None and got["version"] == version and got["label"] is None
        finally:
            store.close()
        # and they join labels after the restart
        r = post_labels(w.url, {"model": cfg.name, "labels": [{"id": i, "label": 1} for i in acked[:500]]})
        assert r.status_code == 200 and r.json()["matched"] == 500
    finally:
        stop.set()
        w.stop()
