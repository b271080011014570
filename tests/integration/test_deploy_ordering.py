"""Deploy ordering (gitops, real git): claim the promotion, deliver, commit. A deploy killed (-9) between
any two steps is settled by recovery so that the GitOps repository's file and the champion alias agree;
a lost claim delivers nothing; a failed delivery withdraws the claim."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.config import ProjectConfig
from ctloop.deploy import deploy_version, storage_uri
from ctloop.deploy.recovery import delivered_uri, recover_promotion
from ctloop.errors import DeployError, RegistryError
from ctloop.registry import Registry
from tests.helpers_cluster import commits
from tests.integration.test_cluster_gitops import gitops, register  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _reg(cfg: ProjectConfig) -> Registry:
    return Registry(cfg.registry.uri, cfg.name)


def _agree(cfg: ProjectConfig) -> int | None:
    champion = _reg(cfg).alias("champion")
    served = delivered_uri(cfg)
    assert served == (storage_uri(cfg, champion) if champion is not None else None), (served, champion)
    return champion


def _kill_at(cfg_path: Path, version: int, pause_at: str) -> list[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers_deploy", str(cfg_path), str(version),
                             "run-crash", pause_at], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    while True:
        line = proc.stdout.readline().strip()
        assert line, proc.stderr.read() if proc.stderr else "child ended early"
        seen.append(line)
        if line == pause_at.upper():
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return seen


@pytest.mark.parametrize("pause_at,champion_after", [("claimed", 1), ("delivered", 2), ("committed", 2)])
def test_kill_between_steps_then_recovery_agrees(gitops, pause_at: str, champion_after: int) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cfg = gitops["cfg"]
    v1 = register(cfg, gitops["tmp"], "run-1", "manual")
    assert deploy_version(cfg, v1, "run-1")["promoted"] is True
    assert _agree(cfg) == v1
    v2 = register(cfg, gitops["tmp"], "run-2", "drift")
    seen = _kill_at(gitops["tmp"] / "proj" / "ctloop.yaml", v2, pause_at)
    assert seen[-1] == pause_at.upper()
    reg = _reg(cfg)
    if pause_at != "committed":
        # the claim is in flight: plain promotions and other deploys are refused, nothing moves
        assert reg.pending_intent() is not None and reg.alias("champion") == v1
        with pytest.raises(RegistryError, match="claimed the promotion"):
            reg.promote(v2, reason="meanwhile")
        young = recover_promotion(cfg, min_age_s=3600)
        assert young["action"] == "in_flight" and reg.pending_intent() is not None
    out = recover_promotion(cfg, min_age_s=0)
    expected = {"claimed": "withdrawn", "delivered": "committed", "committed": None}[pause_at]
    assert out.get("action") == expected, out
    assert reg.pending_intent() is None
    assert _agree(cfg) == {1: v1, 2: v2}[champion_after]
    if champion_after == 2:
        assert reg.alias("previous") == v1
    # the loop goes on: the next deploy claims, delivers and commits
    v3 = register(cfg, gitops["tmp"], "run-3", "drift")
    assert deploy_version(cfg, v3, "run-3")["promoted"] is True
    assert _agree(cfg) == v3


def test_lost_claim_delivers_nothing(gitops) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cfg = gitops["cfg"]
    v1 = register(cfg, gitops["tmp"], "run-1", "manual")
    deploy_version(cfg, v1, "run-1")
    v2 = register(cfg, gitops["tmp"], "run-2", "drift")
    v3 = register(cfg, gitops["tmp"], "run-3", "drift")
    reg = _reg(cfg)
    before, commits_before = delivered_uri(cfg), commits(gitops["bare"])
    # the deploy's claim expects v2 as champion (what its gate compared against), but v1 is: lost
    with pytest.raises(RegistryError, match="not v2"):
        reg.claim_promotion(v3, "stale", v2, {"mode": "gitops", "storage_uri": storage_uri(cfg, v3)})
    assert reg.pending_intent() is None and reg.alias("champion") == v1
    # through the deploy step: a version gated against a champion that has moved is not delivered
    meta = json.loads((Path(reg.get(v3).model_uri).parent / "metadata.json").read_text())
    v4 = reg.register(Path(reg.get(v3).model_uri), {**meta, "parent": v2, "run_id": "run-4"})
    out = deploy_version(cfg, v4, "run-4")
    assert out["promoted"] is False
    assert delivered_uri(cfg) == before and commits(gitops["bare"]) == commits_before
    assert _agree(cfg) == v1


def test_failed_delivery_withdraws_the_claim(gitops, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cfg = gitops["cfg"]
    v1 = register(cfg, gitops["tmp"], "run-1", "manual")
    deploy_version(cfg, v1, "run-1")
    v2 = register(cfg, gitops["tmp"], "run-2", "drift")
    broken = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={
        "gitops": cfg.deploy.gitops.model_copy(update={"repo_url": str(tmp_path / "missing.git")})})})
    with pytest.raises(DeployError):
        deploy_version(broken, v2, "run-2")
    reg = _reg(cfg)
    assert reg.pending_intent() is None and reg.alias("champion") == v1
    assert _agree(cfg) == v1
    events = [e["action"] for e in reg.events()]
    assert events == ["promote"]  # nothing recorded for the withdrawn claim


def test_registry_recover_cli(gitops) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from tests.conftest import run_cli

    cfg = gitops["cfg"]
    v1 = register(cfg, gitops["tmp"], "run-1", "manual")
    cfg_path = gitops["tmp"] / "proj" / "ctloop.yaml"
    _kill_at(cfg_path, v1, "delivered")
    proc = run_cli("registry", "recover", "--config", str(cfg_path), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["action"] == "committed" and doc["version"] == v1
    assert _agree(cfg) == v1
    again = run_cli("registry", "recover", "--config", str(cfg_path))
    assert again.returncode == 0 and "no promotion claim" in again.stdout
