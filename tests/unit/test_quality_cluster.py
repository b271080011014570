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


def test_label_feed_cron_job_is_rendered_and_admitted() -> None:
    from ctloop.manifests.base import render_base

    raw = {"name": "churn", "data": {"source": "s3://b/d"}, "triggers": {"token_file": "/var/run/secrets/ctloop/token"},
           "monitoring": {"labels": {"push_schedule": "0 4 * * *", "push_file": "s3://b/labels.parquet"}}}
    cfg = parse_config(raw)
    files = render_base(cfg)
    import yaml

    cron = yaml.safe_load(files["base/label-feed.yaml"])
    tmpl = cron["spec"]["jobTemplate"]["spec"]["template"]
    args = tmpl["spec"]["containers"][0]["args"]
    assert args[:2] == ["labels", "push"] and "s3://b/labels.parquet" in args
    assert args[args.index("--endpoint") + 1] == "http://ctloop-watcher.ctloop.svc.cluster.local"
    pod_labels = tmpl["metadata"]["labels"]
    (rule,) = network_policy(cfg)["spec"]["ingress"]
    admitted = [s["podSelector"]["matchLabels"] for s in rule["from"]]
    assert any(sel.items() <= pod_labels.items() for sel in admitted)  # its pods reach POST /labels
    assert "base/label-feed.yaml" not in render_base(parse_config({"name": "churn", "data": {"source": "x"}}))
    with pytest.raises(Exception, match="push_schedule needs push_file"):
        parse_config({**raw, "monitoring": {"labels": {"push_schedule": "0 4 * * *"}}})
