"""The prediction store: compact SQLite rows, bounds, label outcomes, persistence across reopen."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ctloop.errors import LabelError
from ctloop.quality.labels import parse_labels_body
from ctloop.quality.store import Label, PredictionStore

pytestmark = pytest.mark.unit
T0 = 1_800_000_000.0


def _add(store: PredictionStore, ids: list[str], when: float = T0, version: int = 1, **kw: object) -> int:
    p = np.linspace(0.1, 0.9, len(ids))
    return store.add(ids, version, p, (p >= 0.5).astype(int), when, **kw)  # type: ignore[arg-type]


def test_round_trip_and_replayed_ids_keep_the_first(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite")
    assert _add(s, ["a", "b"], slices={"plan": ["basic", None]}) == 2
    assert _add(s, ["a"], version=2) == 0  # a replayed event: first prediction stands
    a = s.get("a")
    assert a == {"id": "a", "version": 1, "proba": 0.1, "predicted": 0, "time": int(T0),
                 "slices": {"plan": "basic"}, "label": None}
    assert s.get("b")["slices"] == {"plan": None}  # type: ignore[index]
    s.close()
    again = PredictionStore(tmp_path / "p.sqlite")
    assert again.count() == (2, 0) and again.get("a") is not None


def test_label_outcomes_and_window(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite", max_age_seconds=86400)
    _add(s, ["a", "b", "c", "d"])
    res = s.apply_labels([Label("a", 1, T0 + 10), Label("a", 0, T0 + 11), Label("zz", 1, T0),
                          Label("b", 0, T0 - 5), Label("c", 1, T0 + 2 * 86400), Label("d", 0, T0 + 60)],
                         now=T0 + 100)
    assert res.to_dict() == {"matched": 2, "unknown": 1, "duplicate": 1, "expired": 1, "invalid": 1}
    assert res.delays == [10, 60]
    assert s.apply_labels([Label("a", 0, T0 + 20)], now=T0 + 100).counts["duplicate"] == 1
    assert s.get("a")["label"] == 1  # type: ignore[index]
    p, yhat, y, _ = s.labelled_window(1, 10)
    assert y.tolist() == [1, 0] and p.tolist() == pytest.approx([0.1, 0.9])
    assert s.count() == (4, 2)


def test_bounded_by_count_and_age(tmp_path: Path) -> None:
    s = PredictionStore(tmp_path / "p.sqlite", max_predictions=100, max_age_seconds=3600)
    for k in range(5):
        _add(s, [f"k{k}-{i}" for i in range(40)], when=T0 + k)
    stored, _ = s.count()
    assert stored <= 100 and s.get("k4-39") is not None and s.get("k0-0") is None  # oldest evicted first
    assert s.prune(now=T0 + 3600 + 3) > 0
    assert s.get("k4-0") is not None and s.get("k2-0") is None


def test_label_body_errors_name_the_row() -> None:
    ok = parse_labels_body(b'{"model": "m", "labels": [{"id": "a", "label": 1}, {"id": 7, "label": 0.0}]}', "m")
    assert [(x.id, x.label) for x in ok] == [("a", 1), ("7", 0)]
    for body, where in ((b'{"model": "m", "labels": [{"id": "a", "label": 1}, {"id": "b", "label": 3}]}',
                         "labels[1].label"),
                        (b'{"model": "m", "labels": [{"id": "", "label": 1}]}', "labels[0].id"),
                        (b'{"model": "m", "labels": [{"id": "a", "label": true}]}', "labels[0].label"),
                        (b'{"model": "m", "labels": {"id": "a"}}', "labels: must be a list"),
                        (b'{"model": "x", "labels": []}', "model: 'x'")):
        with pytest.raises(LabelError, match=re.escape(where)):
            parse_labels_body(body, "m")


def test_request_id_header_order() -> None:
    from ctloop.serving.decode import request_id_of

    assert request_id_of({"CE-ID": "ce", "x-request-id": "x"}) == "ce"
    assert request_id_of({"x-request-id": "x"}) == "x"
    assert len(request_id_of(None)) == 32
