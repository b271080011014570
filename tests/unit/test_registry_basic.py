"""Filesystem registry: numbered versions, aliases, atomic visibility, concurrent registration."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from ctloop.errors import RegistryError, VersionNotFoundError
from ctloop.registry import Registry

pytestmark = pytest.mark.unit


def _model_dir(root: Path, tag: str = "m") -> Path:
    d = root / tag
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.json").write_text(json.dumps({"format": "ctloop-model/v1", "tag": tag}))
    (d / "model.joblib").write_bytes(b"x" * 100)
    return d


def test_register_promote_previous(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"), "churn")
    assert reg.versions() == [] and reg.alias("champion") is None
    v1 = reg.register(_model_dir(tmp_path, "a"), {"run_id": "r1"})
    v2 = reg.register(_model_dir(tmp_path, "b"), {"run_id": "r2"})
    assert (v1, v2) == (1, 2)
    assert reg.get(1).metadata["run_id"] == "r1"
    assert Path(reg.get(2).model_uri, "model.json").exists()
    assert reg.promote(1, "first") is None
    assert reg.promote(2, "second") == 1
    assert reg.snapshot() == {"versions": [1, 2], "aliases": {"champion": 2, "previous": 1}}
    assert reg.get("champion").version == 2
    assert reg.alias_doc("champion")["reason"] == "second"


def test_unknown_version_and_alias(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"), "churn")
    with pytest.raises(VersionNotFoundError, match="no 'champion' alias"):
        reg.get("champion")
    with pytest.raises(VersionNotFoundError, match="no version 7"):
        reg.get(7)
    with pytest.raises(VersionNotFoundError):
        reg.promote(7)


def test_incomplete_version_is_invisible(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"), "churn")
    reg.register(_model_dir(tmp_path), {})
    # a crashed registration: number claimed, model copied, metadata never written
    (tmp_path / "reg" / "churn" / "versions" / "2" / "model").mkdir(parents=True)
    assert reg.versions() == [1]
    assert reg.register(_model_dir(tmp_path), {}) == 3


def test_corrupt_metadata_and_non_model(tmp_path: Path) -> None:
    reg = Registry(str(tmp_path / "reg"), "churn")
    reg.register(_model_dir(tmp_path), {})
    (tmp_path / "reg" / "churn" / "versions" / "1" / "metadata.json").write_text("{oops")
    with pytest.raises(RegistryError, match="corrupt registry document"):
        reg.get(1)
    with pytest.raises(RegistryError, match="not a model folder"):
        reg.register(tmp_path / "nothing", {})


def _register_many(args: tuple[str, str, int]) -> list[int]:
    uri, model_dir, n = args
    reg = Registry(uri, "churn")
    return [reg.register(model_dir, {"n": i}) for i in range(n)]


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    uri, md = str(tmp_path / "reg"), str(_model_dir(tmp_path))
    with mp.get_context("spawn").Pool(4) as pool:
        results = pool.map(_register_many, [(uri, md, 5)] * 4)
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, 21))
    assert Registry(uri, "churn").versions() == got
