"""The structure of ``.github/workflows/kind-e2e.yaml`` (it needs Docker, so it never runs here): the
loop's steps are present and in order, every file it applies is a committed one that the offline tests
validate (the kind tree and ``examples/churn/kind/setup``), and no step script interpolates ``${{ }}``
expressions (they run as plain bash; shellcheck checks them in tests/integration/test_kind_manifests.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import load_config
from tests.helpers_cluster import KIND_CONFIG, KIND_MANIFESTS, KIND_SETUP, KIND_WORKFLOW, ROOT, load_all

pytestmark = pytest.mark.unit

APPLY_RE = re.compile(r"kubectl (?:-n \S+ )?(?:apply|create)\b[^\n]*?\s-([fk]) (\S+)")


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(KIND_WORKFLOW.read_text())
    assert isinstance(doc, dict) and doc.get("jobs"), "kind-e2e.yaml has no jobs"
    return doc


def steps() -> list[dict[str, Any]]:
    (job,) = workflow()["jobs"].values()
    return list(job["steps"])


def scripts() -> list[str]:
    return [s["run"] for s in steps() if "run" in s]


def expand(path: str) -> Path:
    """A workflow path (``"$SETUP/x.yaml"``) as a path in this checkout."""
    env = workflow()["env"]
    text = path.strip("\"'")
    for var, value in env.items():
        text = text.replace(f"${var}", str(value)).replace(f"${{{var}}}", str(value))
    return ROOT / text


def first_step(*needles: str) -> int:
    """Index of the first step whose script contains every needle (fails the test when none does)."""
    for i, s in enumerate(steps()):
        if all(n in s.get("run", "") for n in needles):
            return i
    raise AssertionError(f"no step of kind-e2e.yaml runs {needles}")


def test_env_names_the_kind_config_tree_and_setup() -> None:
    env = workflow()["env"]
    assert expand("$CONFIG") == KIND_CONFIG and expand("$KIND_TREE") == KIND_MANIFESTS
    assert expand("$SETUP") == KIND_SETUP
    cfg = load_config(KIND_CONFIG)
    assert env["RUNTIME_IMAGE"] == cfg.kfp.images.runtime  # the image the kind cluster gets loaded with


def test_the_loop_runs_in_order() -> None:
    cfg = load_config(KIND_CONFIG)
    seed = _job_name("seed-data-job.yaml")
    drift = _job_name("seed-drift-job.yaml")
    order = [
        first_step('--config "$CONFIG"', 'diff -r /tmp/rendered-kind "$KIND_TREE"'),  # trees as committed
        first_step("mlpipeline-minio-artifact", "$SETUP/storage-secret.yaml"),  # KFP's MinIO credentials
        first_step('-k "$KIND_TREE/overlays/kind"'),
        first_step('"$SETUP/seed-data-job.yaml"', f"condition=complete job/{seed}"),
        first_step('ctloop compile --config "$CONFIG"', "create_run_from_pipeline_package",
                   "wait_for_run_completion"),
        first_step(f"condition=Ready inferenceservice/{cfg.name}", "versions/1/model",
                   f"/v1/models/{cfg.name}:predict"),
        first_step('"$SETUP/seed-drift-job.yaml"', f"condition=complete job/{drift}"),
        first_step(f"secret {cfg.triggers.token_secret}", "Authorization: Bearer",
                   '"@$SETUP/drift-alert.json"', "/alerts", '"fired"'),
        first_step("/triggers/status", "versions/2/model", "rollout status deployment/"),
        first_step('ctloop registry champion --config "$CONFIG"', ".version == 2",
                   f"/v1/models/{cfg.name}:predict"),
    ]
    assert order == sorted(order) and len(set(order)) == len(order), order


def _job_name(file: str) -> str:
    (doc,) = load_all((KIND_SETUP / file).read_text())
    return str(doc["metadata"]["name"])


def applied() -> list[tuple[str, str]]:
    """``(flag, argument)`` of every ``kubectl apply|create -f/-k`` in the workflow."""
    return [(m.group(1), m.group(2)) for s in scripts() for m in APPLY_RE.finditer(s)]


def test_every_applied_file_is_committed_and_validated_offline() -> None:
    local = [(flag, arg) for flag, arg in applied() if not arg.strip("\"'").startswith(("https://", "github.com/"))
             and arg != "-"]
    assert len(local) >= 5, local
    validated = (KIND_SETUP, KIND_MANIFESTS)  # tests/integration/test_kind_manifests.py checks both
    for flag, arg in local:
        path = expand(arg)
        assert path.exists(), f"kind-e2e.yaml applies {arg}, which is not committed"
        assert any(path.is_relative_to(root) for root in validated), \
            f"kind-e2e.yaml applies {arg}: keep it under {KIND_SETUP} or the rendered kind tree"
        if flag == "k":
            assert (path / "kustomization.yaml").is_file(), arg
    # piped objects come from committed templates or kubectl's own generators, never inline YAML
    assert not [s for s in scripts() if "apiVersion:" in s or "kind: Job" in s]


def test_every_setup_file_is_used_by_the_workflow() -> None:
    text = "\n".join(scripts())
    files = sorted(p.name for p in KIND_SETUP.iterdir() if p.suffix in (".yaml", ".json"))
    assert files
    unused = [f for f in files if f'$SETUP/{f}' not in text]
    assert not unused, f"setup files the workflow never applies: {unused}"


def test_no_step_script_interpolates_expressions() -> None:
    bad = [s.get("name") for s in steps() if "${{" in s.get("run", "")]
    assert not bad, f"steps interpolating ${{{{ }}}} into their script (pass values through env): {bad}"


def test_it_runs_on_pull_requests_that_touch_what_it_checks() -> None:
    doc = workflow()
    triggers = doc.get("on", doc.get(True))  # PyYAML reads a bare `on:` key as True
    paths = triggers["pull_request"]["paths"]
    for needed in ("examples/**", "src/**", "pipelines/**", ".github/workflows/kind-e2e.yaml"):
        assert needed in paths, needed
    assert "workflow_dispatch" in triggers
