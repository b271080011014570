"""The real pipeline (KFP local runner) with ``deploy.mode: gitops``: a new champion is exactly one
commit in a real bare git repository, and the overlay kubectl kustomize builds serves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.config import load_config
from ctloop.deploy import storage_uri
from ctloop.registry import Registry
from ctloop.runner import run_local
from tests.conftest import make_project
from tests.helpers_cluster import commits, find, git, kustomize, rendered_files, write_tree

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def test_pipeline_promotion_is_one_gitops_commit_carrying_the_new_storage_uri(tmp_path: Path) -> None:
    bare = tmp_path / "gitops.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch", "main", str(bare))

    def edit(text: str) -> str:
        return text.replace("  mode: local             # local | gitops | kubernetes",
                            f"  mode: gitops\n  gitops:\n    repo_url: {bare}\n    path: deploy\n")

    cfg = load_config(make_project(tmp_path / "proj", days=6, rows_per_day=200, edit=edit))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    write_tree(rendered_files(cfg), seed / "deploy")
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "render manifests")
    git(seed, "push", "--quiet", "origin", "HEAD:main")

    result = run_local(cfg, trigger={"cause": "drift", "fingerprint": "f00d"}, run_id="run-gitops-1")
    assert result.status == "succeeded" and result.promoted, result.error
    assert commits(bare) == 2
    message = git(bare, "log", "-1", "--format=%B", "main")
    assert f"Ctloop-Version: {result.version}" in message and "Ctloop-Trigger: drift" in message
    assert "Ctloop-Run-Id: run-gitops-1" in message
    check = tmp_path / "check"
    git(tmp_path, "clone", "--quiet", str(bare), str(check))
    isvc = find(kustomize(check / "deploy" / "overlays" / "production"), "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == storage_uri(cfg, result.version)
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") == result.version
