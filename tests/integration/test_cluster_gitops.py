"""``deploy.mode: gitops`` against a real bare git repository (real git, real kubectl kustomize)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import ProjectConfig, load_config
from ctloop.deploy import storage_uri
from ctloop.errors import ConfigError, DeployError
from ctloop.registry import Registry
from ctloop.steps import deploy_step
from tests.conftest import make_project
from tests.helpers_cluster import commits, find, git, kustomize, rendered_files, write_tree

pytestmark = pytest.mark.integration
PATCH = "clusters/churn/overlays/production/model-deploy.yaml"


def gitops_config(root: Path, repo_url: str, attempts: int = 5) -> ProjectConfig:
    def edit(text: str) -> str:
        return text.replace("  mode: local             # local | gitops | kubernetes",
                            f"  mode: gitops\n  canary_percent: 25\n  gitops:\n    repo_url: {repo_url}\n"
                            f"    branch: main\n    path: clusters/churn\n    overlay: production\n"
                            f"    push_attempts: {attempts}")

    path = make_project(root / "proj", days=3, rows_per_day=20, edit=edit)
    return load_config(path)


def register(cfg: ProjectConfig, tmp: Path, run_id: str, cause: str) -> int:
    model = tmp / f"model-{run_id}"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"trainer": "sklearn"}))
    meta = {"run_id": run_id, "trigger": {"cause": cause}}
    return Registry(cfg.registry.uri, cfg.name).register(model, meta)


@pytest.fixture
def gitops(tmp_path: Path) -> dict[str, Any]:
    """A bare GitOps repo seeded with the rendered manifests, and a gitops-mode project."""
    bare = tmp_path / "gitops.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    cfg = gitops_config(tmp_path, str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    write_tree(rendered_files(cfg), seed / "clusters" / "churn")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "render manifests")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    return {"bare": bare, "cfg": cfg, "seed": seed, "tmp": tmp_path}


def built_isvc(bare: Path, tmp: Path) -> dict[str, Any]:
    checkout = tmp / f"check-{commits(bare)}"
    git(tmp, "clone", "--quiet", str(bare), str(checkout))
    return find(kustomize(checkout / "clusters" / "churn" / "overlays" / "production"), "InferenceService")


def test_gitops_deploy_makes_one_commit_whose_overlay_serves_the_new_version(gitops) -> None:  # type: ignore[no-untyped-def]
    cfg, bare = gitops["cfg"], gitops["bare"]
    version = register(cfg, gitops["tmp"], "run-42", "drift")
    before = commits(bare)
    out = deploy_step(cfg, version, "run-42")
    assert commits(bare) == before + 1
    assert out["mode"] == "gitops" and out["attempts"] == 1
    assert out["commit"] == git(bare, "rev-parse", "main")
    assert git(bare, "show", "--name-only", "--format=", "main").splitlines() == [PATCH]
    message = git(bare, "log", "-1", "--format=%B", "main")
    for line in (f"Ctloop-Version: {version}", "Ctloop-Run-Id: run-42", "Ctloop-Trigger: drift",
                 "Ctloop-Model: churn", "Ctloop-Canary-Percent: 25"):
        assert line in message
    assert git(bare, "log", "-1", "--format=%an <%ae>", "main") == "ctloop <ctloop@users.noreply.invalid>"
    isvc = built_isvc(bare, gitops["tmp"])
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == storage_uri(cfg, version)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert isvc["metadata"]["annotations"]["ctloop.io/run-id"] == "run-42"
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") == version


def test_redeploying_the_same_version_adds_no_commit(gitops) -> None:  # type: ignore[no-untyped-def]
    cfg, bare = gitops["cfg"], gitops["bare"]
    version = register(cfg, gitops["tmp"], "run-1", "schedule")
    deploy_step(cfg, version, "run-1")
    n = commits(bare)
    out = deploy_step(cfg, version, "run-1")
    assert commits(bare) == n and out["changed"] is False and out["commit"] is None


def _race_hook(bare: Path, other: Path, reject_always: bool = False) -> None:
    """A pre-receive hook: the first push (or every push) meets a concurrent writer's push."""
    hook = bare / "hooks" / "pre-receive"
    body = "exit 1\n" if reject_always else (
        f'[ -e "{bare}/raced" ] && exit 0\n'
        f'touch "{bare}/raced"\n'
        'for v in $(env | grep "^GIT_" | cut -d= -f1); do unset "$v"; done\n'
        f'git -C "{other}" push --quiet origin HEAD:main >&2\n')
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize("conflict", [False, True], ids=["other-file", "same-file"])
def test_concurrent_push_is_rebased_never_forced(gitops, conflict: bool) -> None:  # type: ignore[no-untyped-def]
    cfg, bare, tmp = gitops["cfg"], gitops["bare"], gitops["tmp"]
    other = tmp / "other"
    git(tmp, "clone", "--quiet", str(bare), str(other))
    target = other / (PATCH if conflict else "clusters/churn/README.md")
    target.write_text(target.read_text() + "# another writer\n" if conflict else "cluster notes\n")
    git(other, "add", "-A")
    git(other, "commit", "--quiet", "-m", "concurrent change")
    theirs = git(other, "rev-parse", "HEAD")
    _race_hook(bare, other)
    version = register(cfg, tmp, "run-7", "volume")
    before = commits(bare)
    out = deploy_step(cfg, version, "run-7")
    assert out["attempts"] == 2
    assert commits(bare) == before + 2  # theirs and ours, linear
    assert git(bare, "rev-parse", "main~1") == theirs  # their commit kept: nothing was force-pushed
    assert "Ctloop-Run-Id: run-7" in git(bare, "log", "-1", "--format=%B", "main")
    assert built_isvc(bare, tmp)["spec"]["predictor"]["model"]["storageUri"] == storage_uri(cfg, version)


def test_push_rejected_every_time_fails_and_leaves_champion(gitops) -> None:  # type: ignore[no-untyped-def]
    cfg, bare = gitops["cfg"], gitops["bare"]
    reg = Registry(cfg.registry.uri, cfg.name)
    first = register(cfg, gitops["tmp"], "run-1", "manual")
    deploy_step(cfg, first, "run-1")
    _race_hook(bare, gitops["seed"], reject_always=True)
    second = register(cfg, gitops["tmp"], "run-2", "drift")
    head = git(bare, "rev-parse", "main")
    with pytest.raises(DeployError, match="push rejected 5 times"):
        deploy_step(cfg, second, "run-2")
    assert git(bare, "rev-parse", "main") == head
    assert reg.alias("champion") == first


def test_unreachable_repository_fails_and_leaves_champion(tmp_path: Path) -> None:
    cfg = gitops_config(tmp_path, str(tmp_path / "missing.git"))
    version = register(cfg, tmp_path, "run-1", "manual")
    with pytest.raises(DeployError, match="git clone"):
        deploy_step(cfg, version, "run-1")
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") is None


def test_repository_without_rendered_overlay_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "empty.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    (seed / "README.md").write_text("empty\n")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "init")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    cfg = gitops_config(tmp_path, str(bare))
    version = register(cfg, tmp_path, "run-1", "manual")
    with pytest.raises(DeployError, match="ctloop manifests render"):
        deploy_step(cfg, version, "run-1")
    assert commits(bare) == 1


def test_gitops_mode_needs_a_repository(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace("  mode: local             # local | gitops | kubernetes", "  mode: gitops")

    cfg = load_config(make_project(tmp_path / "p", days=3, rows_per_day=20, edit=edit))
    version = register(cfg, tmp_path, "run-1", "manual")
    with pytest.raises(ConfigError, match="deploy.gitops.repo_url"):
        deploy_step(cfg, version, "run-1")


def test_local_mode_still_moves_the_champion_alias(tmp_path: Path) -> None:
    cfg = load_config(make_project(tmp_path / "p", days=3, rows_per_day=20))
    reg = Registry(cfg.registry.uri, cfg.name)
    a, b = register(cfg, tmp_path, "r1", "manual"), register(cfg, tmp_path, "r2", "drift")
    first = deploy_step(cfg, a, "r1")
    assert (first["mode"], first["version"], first["previous"]) == ("local", a, None)
    out = deploy_step(cfg, b, "r2")
    assert (out["previous"], reg.alias("champion"), reg.alias("previous")) == (a, b, a)
    assert "commit" not in out
