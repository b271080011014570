"""Security regressions: model artifacts are verified against their recorded digests before anything is
unpickled (a crafted ``model.joblib`` used to run code in the server), and the server counts refusals."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import load_config
from ctloop.errors import ArtifactIntegrityError
from ctloop.model import load_model
from ctloop.registry import Registry
from tests.conftest import make_project
from tests.helpers_serving import ServerProcess, add_version, train_model_dir, write_config

pytestmark = [pytest.mark.security]


class _Exploit:
    """Unpickling this runs ``touch <marker>``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def _tamper(model_dir: Path, marker: Path) -> None:
    target = model_dir / "model.joblib"
    target.chmod(0o644)
    target.write_bytes(pickle.dumps(_Exploit(marker)))


@pytest.fixture
def project(tmp_path: Path) -> Any:
    cfg_path = make_project(tmp_path / "proj", days=2, rows_per_day=50)
    return cfg_path, load_config(cfg_path)


def test_tampered_model_folder_is_refused_before_unpickling(project: Any, tmp_path: Path) -> None:
    _, cfg = project
    folder = train_model_dir(cfg, tmp_path / "m")
    assert "model.joblib" in json.loads((folder / "model.json").read_text())["digests"]
    load_model(folder)  # the honest folder loads
    marker = tmp_path / "pwned"
    _tamper(folder, marker)
    with pytest.raises(ArtifactIntegrityError, match="model.joblib"):
        load_model(folder)
    assert not marker.exists()


def test_pickle_without_a_recorded_digest_is_not_unpickled(project: Any, tmp_path: Path) -> None:
    _, cfg = project
    folder = train_model_dir(cfg, tmp_path / "m")
    manifest = json.loads((folder / "model.json").read_text())
    del manifest["digests"]
    (folder / "model.json").write_text(json.dumps(manifest))
    marker = tmp_path / "pwned"
    _tamper(folder, marker)
    with pytest.raises(ArtifactIntegrityError, match="no digest recorded"):
        load_model(folder)
    assert not marker.exists()


def test_registry_verifies_the_registration_digest(project: Any, tmp_path: Path) -> None:
    _, cfg = project
    v = add_version(cfg, tmp_path, seed=0)
    reg = Registry(cfg.registry.uri, cfg.name)
    folder = reg.local_model_dir(v)
    # tamper with both the artifact and its manifest digest: only the registration record catches it
    marker = tmp_path / "pwned"
    _tamper(folder, marker)
    man = folder / "model.json"
    man.chmod(0o644)
    doc = json.loads(man.read_text())
    doc["digests"]["model.joblib"] = __import__("hashlib").sha256((folder / "model.joblib").read_bytes()).hexdigest()
    man.write_text(json.dumps(doc))
    with pytest.raises(ArtifactIntegrityError, match="recorded at registration"):
        reg.local_model_dir(v)
    assert not marker.exists()


@pytest.mark.integration
@pytest.mark.slow
def test_server_refuses_and_counts_a_tampered_champion(project: Any, tmp_path: Path) -> None:
    cfg_path, cfg = project
    write_config(cfg_path, {"poll_seconds": 0.2})
    cfg = load_config(cfg_path)
    v1 = add_version(cfg, tmp_path, seed=0)
    server = ServerProcess(cfg_path)
    marker = tmp_path / "pwned"
    try:
        server.wait_ready(cfg.name)
        reg = Registry(cfg.registry.uri, cfg.name)
        v2 = add_version(cfg, tmp_path, seed=1, promote=False)
        _tamper(reg.local_model_dir(v2), marker)
        reg.promote(v2, "tampered after registration")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and server.metric("ctloop_serving_artifacts_rejected_total") < 1:
            time.sleep(0.2)
        assert server.metric("ctloop_serving_artifacts_rejected_total") == 1
        assert server.metric("ctloop_serving_model_version") == v1
        assert "artifact digest mismatch" in server.log() or "does not match" in server.log()
        assert not marker.exists()
    finally:
        server.stop()
    shutil.rmtree(tmp_path / "proj", ignore_errors=True)
