"""Registry: versions, aliases, promotion rules, rollback, lineage, diff and clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctloop.errors import RegistryError, VersionNotFoundError
from ctloop.registry import PENDING, Registry, tree_digest
from tests.conftest import tree_bytes
from tests.helpers_registry import meta, tiny_model

pytestmark = pytest.mark.unit


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(str(tmp_path / "registry"), "churn")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return tiny_model(tmp_path / "model", blob_kb=4, files=2)


def test_register_get_and_immutable_files(reg: Registry, model: Path) -> None:
    assert reg.versions() == [] and reg.snapshot() == {"versions": [], "aliases": {"champion": None,
                                                                                   "previous": None}}
    v1, v2 = reg.register(model, meta(run_id="a")), reg.register(model, meta(run_id="b"))
    assert (v1, v2) == (1, 2) and reg.versions() == [1, 2]
    mv = reg.get("2")
    assert mv.metadata["run_id"] == "b" and mv.metadata["artifact"]["sha256"] == tree_digest(model)
    assert tree_digest(mv.model_uri) == tree_digest(model)
    blob = Path(mv.model_uri) / "blob-0.bin"
    assert not os.access(blob, os.W_OK) or os.geteuid() == 0  # root ignores mode bits
    assert oct(blob.stat().st_mode & 0o777) == oct(0o444)


def test_promote_previous_and_rollback(reg: Registry, model: Path) -> None:
    for _ in range(3):
        reg.register(model, meta())
    assert reg.promote(1, "first") is None
    assert reg.promote(2, "better") == 1
    assert (reg.alias("champion"), reg.alias("previous")) == (2, 1)
    assert reg.alias_doc("champion")["reason"] == "better"
    assert reg.rollback("bad canary") == (1, 2)
    assert (reg.alias("champion"), reg.alias("previous")) == (1, 2)
    assert reg.get("champion").version == 1
    assert [e["action"] for e in reg.events()] == ["promote", "promote", "rollback"]
    assert reg.promote(1) == 1  # already champion: no-op
    assert len(reg.events()) == 3


def test_failed_gate_needs_force_and_reason_both_recorded(reg: Registry, model: Path) -> None:
    good, bad = reg.register(model, meta()), reg.register(model, meta(passed=False))
    reg.promote(good)
    before = tree_bytes(Path(reg.root))
    with pytest.raises(RegistryError, match="failed its evaluation gate.*--force"):
        reg.promote(bad)
    with pytest.raises(RegistryError, match="needs a reason"):
        reg.promote(bad, force=True)
    assert tree_bytes(Path(reg.root)) == before
    reg.promote(bad, reason="hotfix approved by on-call", force=True)
    doc = reg.alias_doc("champion")
    assert doc["version"] == bad and doc["forced"] is True and doc["gate_passed"] is False
    assert doc["reason"] == "hotfix approved by on-call"
    ev = reg.events()[-1]
    assert ev["forced"] and ev["reason"] == "hotfix approved by on-call" and ev["replaced"] == good


def test_compare_and_swap_promotion(reg: Registry, model: Path) -> None:
    for _ in range(3):
        reg.register(model, meta())
    reg.promote(1)
    reg.promote(2, expected_champion=1)
    with pytest.raises(RegistryError, match="champion is v2, not v1"):
        reg.promote(3, expected_champion=1)
    assert reg.alias("champion") == 2


def test_unknown_version_and_alias_errors(reg: Registry, model: Path) -> None:
    reg.register(model, meta())
    with pytest.raises(VersionNotFoundError, match="no version 7 .known: \\[1\\]"):
        reg.get(7)
    with pytest.raises(VersionNotFoundError, match="no 'champion' alias"):
        reg.get("champion")
    with pytest.raises(VersionNotFoundError, match="no version 9; nothing changed"):
        reg.promote(9)
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()


def test_corrupt_metadata_and_alias_are_clear_errors(reg: Registry, model: Path) -> None:
    v = reg.register(model, meta())
    reg.promote(v)
    md = Path(reg.root) / "versions" / "1" / "metadata.json"
    md.chmod(0o644)
    md.write_text('{"version": 1, "trunc')
    with pytest.raises(RegistryError, match=r"metadata\.json: corrupt registry document"):
        reg.get(1)
    md.write_text('{"version": 5}')
    with pytest.raises(RegistryError, match="records version 5, expected 1"):
        reg.get(1)
    (Path(reg.root) / "aliases" / "champion.json").write_text("[]")
    with pytest.raises(RegistryError, match=r"champion\.json: corrupt registry document"):
        reg.alias("champion")


def test_unreachable_registry_is_a_clear_error_without_partial_writes(tmp_path: Path, model: Path) -> None:
    with pytest.raises(RegistryError, match="cannot open this storage"):
        Registry("nosuchproto://bucket/reg", "churn")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    bad = Registry(str(blocker), "churn")
    with pytest.raises(RegistryError, match="cannot create"):
        bad.register(model, meta())
    assert blocker.read_text() == "not a folder"


def test_bad_model_folder_registers_nothing(reg: Registry, tmp_path: Path) -> None:
    reg.register(tiny_model(tmp_path / "ok", 1, 1), meta())
    before = tree_bytes(Path(reg.root))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="model.json missing"):
        reg.register(tmp_path / "empty", meta())
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(RegistryError, match="not JSON-serialisable"):
        reg.register(tmp_path / "ok", circular)
    assert tree_bytes(Path(reg.root)) == before


def test_pending_alias_transaction_is_rolled_forward(reg: Registry, model: Path) -> None:
    for _ in range(2):
        reg.register(model, meta())
    reg.promote(1)
    # simulate a crash right after the pending record landed (before any alias document changed)
    pending = {"aliases": {"champion": {"alias": "champion", "version": 2},
                           "previous": {"alias": "previous", "version": 1}},
               "event": {"action": "promote", "version": 2, "at": "20990101T000000000000Z", "id": "x"}}
    (Path(reg.root) / "aliases" / PENDING).write_text(json.dumps(pending))
    assert (reg.alias("champion"), reg.alias("previous")) == (2, 1)
    assert not (Path(reg.root) / "aliases" / PENDING).exists()
    assert reg.events()[-1]["id"] == "x"


def test_invisible_half_registered_version_is_skipped(reg: Registry, model: Path) -> None:
    reg.register(model, meta())
    (Path(reg.root) / "versions" / "2" / "model").mkdir(parents=True)  # crashed mid-copy
    assert reg.versions() == [1]
    assert reg.register(model, meta()) == 3 and reg.versions() == [1, 3]


def test_lineage_and_diff(reg: Registry, model: Path) -> None:
    data = {"source": "s3://b/d", "first_day": "2026-01-01", "last_day": "2026-01-10", "content_hash": "ab",
            "rows": 10}
    v1 = reg.register(model, meta(run_id="r1", trigger={"cause": "manual"}, parent=None, data=data,
                                  config_hash="c1"))
    reg.promote(v1)
    trig = {"cause": "drift", "fingerprint": "f00d", "alertname": "CtloopFeatureDrift"}
    data2 = {**data, "content_hash": "cd"}
    v2 = reg.register(model, {**meta(run_id="r2", trigger=trig, parent=v1, data=data2, config_hash="c1"),
                              "metrics": {"roc_auc": 0.9}})
    reg.promote(v2, "gate passed")
    lin = reg.lineage("champion")
    assert lin["version"] == 2 and lin["trigger"] == trig and lin["parent"] == 1
    assert lin["ancestors"] == [{"version": 1, "run_id": "r1", "trigger": "manual",
                                 "registered_at": reg.get(1).metadata["registered_at"]}]
    assert lin["aliases"] == ["champion"] and lin["events"][-1]["action"] == "promote"
    d = reg.diff(1, 2)
    assert d["metrics"]["roc_auc"]["delta"] == pytest.approx(0.1)
    assert d["fields"]["data.content_hash"] == {"a": "ab", "b": "cd", "same": False}
    assert d["fields"]["config_hash"]["same"] is True


def test_object_store_style_backend(tmp_path: Path, model: Path) -> None:
    """The same API on a non-local fsspec backend without conditional writes (``memory://``): refused
    unless the user says only one process writes it (``registry.single_writer``)."""
    uri = f"memory://ctloop-test-{tmp_path.name}/registry"
    with pytest.raises(RegistryError, match="no conditional writes.*single_writer"):
        Registry(uri, "churn")
    reg = Registry(uri, "churn", single_writer=True)
    v1, v2 = reg.register(model, meta()), reg.register(model, meta(parent=1))
    reg.promote(v1)
    assert reg.promote(v2) == 1 and reg.rollback() == (1, 2)
    local = reg.local_model_dir("champion", cache_dir=tmp_path / "cache")
    assert tree_digest(local) == tree_digest(model)
    assert [e["action"] for e in reg.lineage(2)["events"]] == ["promote", "rollback"]
