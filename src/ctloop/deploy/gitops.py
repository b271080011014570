"""``deploy.mode: gitops``: write the new version into the overlay's InferenceService patch, commit with
the lineage, push. A push that loses a race is retried on top of the new remote head (rebase), never
forced. Real ``git`` does the work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ctloop.config import ProjectConfig
from ctloop.errors import ConfigError, DeployError
from ctloop.manifests.overlays import DEPLOY_PATCH, canary_percent, deploy_patch

GIT_TIMEOUT_S = 300


@dataclass(frozen=True)
class GitOpsResult:
    """What the deploy did in the GitOps repository."""

    commit: str | None
    changed: bool
    attempts: int
    file: str
    repo_url: str
    branch: str

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly form."""
        return asdict(self)


def commit_message(facts: dict[str, str], uri: str, canary: int) -> str:
    """Commit message: a one-line summary and ``Key: value`` trailers carrying the lineage."""
    return (f"deploy {facts['model']} v{facts['version']} (trigger: {facts['trigger']})\n\n"
            f"Ctloop-Model: {facts['model']}\nCtloop-Version: {facts['version']}\n"
            f"Ctloop-Run-Id: {facts['run_id']}\nCtloop-Trigger: {facts['trigger']}\n"
            f"Ctloop-Storage-Uri: {uri}\nCtloop-Canary-Percent: {canary}\n")


class _Git:
    def __init__(self, cwd: Path, cfg: ProjectConfig) -> None:
        self.cwd = cwd
        g = cfg.deploy.gitops
        self.identity = ["-c", f"user.name={g.author_name}", "-c", f"user.email={g.author_email}",
                         "-c", "commit.gpgsign=false"]
        self.env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true"}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(["git", *self.identity, *args], cwd=self.cwd, env=self.env,
                                  capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise DeployError("deploy.mode 'gitops' needs the git client on PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise DeployError(f"git {' '.join(args[:2])}: no answer within {GIT_TIMEOUT_S} s "
                              "(is the GitOps repository reachable?)") from exc
        if check and proc.returncode != 0:
            raise DeployError(f"git {' '.join(args[:2])} in the GitOps checkout failed: "
                              f"{(proc.stderr or proc.stdout).strip()}")
        return proc


def _patch_target(path: Path) -> tuple[str, str]:
    try:
        doc = yaml.safe_load(path.read_text())
        return str(doc["metadata"]["name"]), str(doc["metadata"]["namespace"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DeployError(f"{path}: not a rendered InferenceService patch ({exc}); run `ctloop manifests "
                          "render` into the GitOps repository and commit it") from exc


def _write(overlay: Path, uri: str, canary: int, facts: dict[str, str]) -> Path:
    kustomization = overlay / "kustomization.yaml"
    patch = overlay / DEPLOY_PATCH
    if not kustomization.is_file() or DEPLOY_PATCH not in kustomization.read_text() or not patch.is_file():
        raise DeployError(f"{overlay}: overlay has no {DEPLOY_PATCH} patch; run `ctloop manifests render "
                          "--out <repo>/<deploy.gitops.path>` and commit it first")
    name, namespace = _patch_target(patch)
    annotations = {"ctloop.io/model-version": facts["version"], "ctloop.io/run-id": facts["run_id"],
                   "ctloop.io/trigger": facts["trigger"]}
    patch.write_text(deploy_patch(name, namespace, canary, uri, annotations))
    return patch


def deploy_gitops(cfg: ProjectConfig, uri: str, facts: dict[str, str]) -> GitOpsResult:
    """Commit ``uri`` (+ canary percent) into the overlay and push it to ``deploy.gitops``'s branch.

    Raises:
        ConfigError: When ``deploy.gitops.repo_url`` is not set.
        DeployError: When cloning, committing or pushing fails after every attempt.
    """
    g = cfg.deploy.gitops
    if not g.repo_url:
        raise ConfigError("deploy.gitops.repo_url: required when deploy.mode is 'gitops'")
    canary = canary_percent(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-gitops-"))
    try:
        clone = _Git(tmp, cfg)
        clone("clone", "--quiet", "--branch", g.branch, "--single-branch", g.repo_url, "repo")
        git = _Git(tmp / "repo", cfg)
        overlay = tmp / "repo" / g.path / "overlays" / g.overlay
        rel = str((overlay / DEPLOY_PATCH).relative_to(tmp / "repo"))
        message = commit_message(facts, uri, canary)

        def stage() -> bool:
            """Write the patch and commit it; False when the branch already carries it."""
            _write(overlay, uri, canary, facts)
            git("add", "--", rel)
            if git("diff", "--cached", "--quiet", check=False).returncode == 0:
                return False
            git("commit", "--quiet", "-m", message)
            return True

        if not stage():
            return GitOpsResult(None, False, 1, rel, g.repo_url, g.branch)
        for attempt in range(1, g.push_attempts + 1):
            if git("push", "--quiet", "origin", f"HEAD:refs/heads/{g.branch}", check=False).returncode == 0:
                sha = git("rev-parse", "HEAD").stdout.strip()
                return GitOpsResult(sha, True, attempt, rel, g.repo_url, g.branch)
            # someone else pushed first: replay our commit on the new head (never force)
            git("fetch", "--quiet", "origin", g.branch)
            if git("rebase", "--quiet", f"origin/{g.branch}", check=False).returncode != 0:
                # the same file changed upstream: start again from the remote head
                git("rebase", "--abort", check=False)
                git("reset", "--quiet", "--hard", f"origin/{g.branch}")
                if not stage():
                    return GitOpsResult(None, False, attempt, rel, g.repo_url, g.branch)
            elif git("rev-parse", "HEAD").stdout == git("rev-parse", f"origin/{g.branch}").stdout:
                return GitOpsResult(None, False, attempt, rel, g.repo_url, g.branch)
        raise DeployError(f"{g.repo_url} ({g.branch}): push rejected {g.push_attempts} times "
                          "(concurrent deploys); raise deploy.gitops.push_attempts or retry the deploy")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
