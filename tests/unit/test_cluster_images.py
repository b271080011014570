"""Images and the kind CI workflow: hadolint on the Dockerfiles, their structure parsed by the official
Dockerfile parser (via the ``dockerfile`` package), and image names agreeing with the config, the
compiled pipeline and the manifests. Docker itself cannot run here; the kind-e2e workflow builds them."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest
import yaml

from ctloop.config import ImagesConfig, load_config
from tests.helpers_cluster import EXAMPLE, ROOT, tool

pytestmark = pytest.mark.unit
DOCKERFILES = {"runtime": ROOT / "images" / "Dockerfile.runtime",
               "trainer_gpu": ROOT / "images" / "Dockerfile.trainer-gpu"}


def stages(path: Path) -> list[list[tuple[str, tuple[str, ...], tuple[str, ...]]]]:
    """Instructions per build stage: (command, flags, value)."""
    import dockerfile

    out: list[list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = []
    for cmd in dockerfile.parse_file(str(path)):
        if cmd.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append((cmd.cmd, tuple(cmd.flags), tuple(cmd.value)))
    return out


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(name: str) -> None:
    proc = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILES[name])], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_is_multistage_nonroot_deps_before_source(name: str) -> None:
    build, final = stages(DOCKERFILES[name])[0], stages(DOCKERFILES[name])[-1]
    assert len(stages(DOCKERFILES[name])) >= 2
    copies = [v for c, f, v in build if c == "COPY"]
    deps = next(i for i, v in enumerate(copies) if "pyproject.toml" in v)
    source = next(i for i, v in enumerate(copies) if "src/" in v)
    assert deps < source, "the dependency layer must come before the source"
    install_deps = next(i for i, (c, f, v) in enumerate(build)
                        if c == "RUN" and "requirements.txt" in " ".join(v))
    copy_src = next(i for i, (c, f, v) in enumerate(build) if c == "COPY" and "src/" in v)
    assert install_deps < copy_src
    users = [v[0] for c, f, v in final if c == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert [c for c, f, v in final if c == "COPY" and any(x.startswith("--from=") for x in f)]
    (entry,) = [v for c, f, v in final if c == "ENTRYPOINT"]
    assert list(entry[:3]) == ["python", "-m", "ctloop.cli"]
    image = getattr(ImagesConfig(), name)
    assert image in DOCKERFILES[name].read_text(), f"{name}: header must name the image {image}"


def test_dockerignore_admits_exactly_what_the_dockerfiles_copy() -> None:
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text().splitlines()
             if r.strip() and not r.startswith("#")]

    def ignored(path: str) -> bool:
        out = False
        for r in rules:
            neg = r.startswith("!")
            pat = r.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") or path == pat:
                out = not neg
        return out

    for path in DOCKERFILES.values():
        for stage in stages(path):
            for c, f, v in stage:
                if c == "COPY" and not any(x.startswith("--from=") for x in f):
                    for src in v[:-1]:
                        assert not ignored(src.rstrip("/")), f"{path.name}: COPY {src} is excluded"
    assert ignored("tests") and ignored(".venv") and ignored("examples")


def test_image_names_agree_across_config_pipeline_and_manifests() -> None:
    images = ImagesConfig()
    allowed = {images.runtime, images.trainer_gpu}
    pipeline = (ROOT / "pipelines" / "training" / "pipeline.yaml").read_text()
    used = {line.split("image:", 1)[1].strip() for line in pipeline.splitlines() if "image:" in line}
    assert used and used <= allowed, used - allowed
    example = load_config(EXAMPLE / "ctloop.yaml")
    for rel in ("base/deployment.yaml", "base/schedule-cronjob.yaml"):
        text = (ROOT / "manifests" / rel).read_text()
        assert f"image: {example.kfp.images.runtime}" in text


def test_kind_workflow_builds_applies_runs_and_predicts() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "kind-e2e.yaml").read_text())
    steps = wf["jobs"]["kind-e2e"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "docker build -f images/Dockerfile.runtime" in script
    assert "kind create cluster" in script and "--config kind-config.yaml" in script
    assert "kind load docker-image" in script
    # the kind overlay rendered from examples/churn/ctloop.kind.yaml (tests/unit/test_kind_workflow.py)
    assert 'kubectl apply --server-side -k "$KIND_TREE/overlays/kind"' in script
    assert "create_run_from_pipeline_package" in script and ":predict" in script
    assert wf["env"]["RUNTIME_IMAGE"] == ImagesConfig().runtime
    assert (ROOT / wf["env"]["KIND_TREE"] / "overlays" / "kind" / "kustomization.yaml").is_file()


def test_runtime_image_has_git_for_the_gitops_deploy() -> None:
    final = stages(DOCKERFILES["runtime"])[-1]
    assert any(c == "RUN" and "install" in " ".join(v) and " git " in f" {' '.join(v)} " for c, f, v in final)
