"""The watcher's NetworkPolicy admits the label feed named by ``monitoring.labels.allowed_from``."""

from __future__ import annotations

import pytest

from ctloop.config import parse_config
from ctloop.manifests.base import network_policy

pytestmark = pytest.mark.unit


def _sources(allowed: dict[str, str]) -> list[dict[str, str]]:
    cfg = parse_config({"name": "churn", "data": {"source": "s3://b/d"},
                        "monitoring": {"labels": {"allowed_from": allowed}}})
    (rule,) = network_policy(cfg)["spec"]["ingress"]
    return [s["podSelector"]["matchLabels"] for s in rule["from"]]


def test_label_feed_selector_is_admitted_and_an_empty_one_admits_nobody_more() -> None:
    assert _sources({"app": "label-etl"})[-1] == {"app": "label-etl"}
    base = _sources({})
    assert {} not in base and len(base) == 4  # no catch-all selector
