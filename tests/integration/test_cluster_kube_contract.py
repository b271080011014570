"""``deploy.mode: kubernetes`` against a RECORDED API CONTRACT (tests/contracts/), not a real API server:
no Kubernetes API server can run here. A loopback HTTP server answers as the contract says; the real
``kubernetes`` client talks to it through a kubeconfig."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.config import ProjectConfig, load_config
from ctloop.deploy import storage_uri
from ctloop.deploy.kubernetes import patch_body
from ctloop.errors import DeployError
from ctloop.registry import Registry
from ctloop.steps import deploy_step
from tests.conftest import free_port, make_project

pytestmark = pytest.mark.integration
CONTRACT_FILE = Path(__file__).parents[1] / "contracts" / "kube_inferenceservice_patch.json"
CONTRACT = json.loads(CONTRACT_FILE.read_text())


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(into)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


class ContractServer:
    """Answers PATCH requests as the recorded contract says; records what it received.

    Hand-written addition (not recorded): GET on the same path answers the object as the patches so far
    left it (for deploy recovery, which reads what the InferenceService serves)."""

    def __init__(self, answer: str = "ok") -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.current: dict[str, Any] = json.loads(json.dumps(CONTRACT["existing"]))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append({"method": "GET", "path": self.path})
                ok = self.path == CONTRACT["request"]["path"]
                data = json.dumps(outer.current if ok else CONTRACT["not_found"]).encode()
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PATCH(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"method": "PATCH", "path": self.path, "body": body,
                                       "content_type": self.headers.get("Content-Type"),
                                       "authorization": self.headers.get("Authorization")})
                req = CONTRACT["request"]
                if outer.answer == "forbidden":
                    code, doc = 403, CONTRACT["forbidden"]
                elif self.path != req["path"] or outer.answer == "not_found":
                    code, doc = 404, CONTRACT["not_found"]
                elif self.headers.get("Content-Type") != req["content_type"]:
                    code, doc = 415, {"kind": "Status", "code": 415, "reason": "UnsupportedMediaType"}
                else:
                    doc = merge(CONTRACT["existing"], body)
                    doc["metadata"]["generation"] += 1
                    outer.current = merge(outer.current, body)
                    code = 200
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ContractServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def kube_project(root: Path, port: int) -> ProjectConfig:
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "contract",
        "clusters": [{"name": "contract", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "contract", "user": {"token": "contract-token"}}],
        "contexts": [{"name": "contract", "context": {"cluster": "contract", "user": "contract"}}]}))

    def edit(text: str) -> str:
        return text.replace("  mode: local             # local | gitops | kubernetes",
                            f"  mode: kubernetes\n  canary_percent: 10\n  kubernetes:\n"
                            f"    kubeconfig: {kubeconfig}\n")

    return load_config(make_project(root / "proj", days=3, rows_per_day=20, edit=edit))


def register(cfg: ProjectConfig, tmp: Path) -> int:
    model = tmp / "model"
    model.mkdir(exist_ok=True)
    (model / "model.json").write_text("{}")
    meta = {"run_id": "run-9", "trigger": {"cause": "drift"}}
    return Registry(cfg.registry.uri, cfg.name).register(model, meta)


@pytest.fixture
def server() -> Iterator[ContractServer]:
    with ContractServer() as s:
        yield s


def test_contract_kubernetes_deploy_merge_patches_the_inferenceservice(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = kube_project(tmp_path, server.port)
    version = register(cfg, tmp_path)
    out = deploy_step(cfg, version, "run-9")
    (req,) = server.requests
    contract = CONTRACT["request"]
    assert (req["path"], req["content_type"], req["authorization"]) == \
        (contract["path"], contract["content_type"], contract["authorization"])
    facts = {"model": "churn", "version": str(version), "run_id": "run-9", "trigger": "drift"}
    assert req["body"] == patch_body(storage_uri(cfg, version), 10, facts)
    assert out["mode"] == "kubernetes" and out["generation"] == 5
    assert out["inferenceservice"] == "ctloop/churn"
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") == version


@pytest.mark.parametrize("answer, status", [("not_found", 404), ("forbidden", 403)])
def test_contract_refused_patch_leaves_the_champion(tmp_path: Path, answer: str, status: int) -> None:
    with ContractServer(answer) as s:
        cfg = kube_project(tmp_path, s.port)
        version = register(cfg, tmp_path)
        with pytest.raises(DeployError, match=f"HTTP {status}"):
            deploy_step(cfg, version, "run-9")
    assert Registry(cfg.registry.uri, cfg.name).alias("champion") is None


def test_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    cfg = kube_project(tmp_path, free_port())
    Path(cfg.deploy.kubernetes.kubeconfig or "").unlink()
    with pytest.raises(DeployError, match="deploy.kubernetes"):
        deploy_step(cfg, register(cfg, tmp_path), "run-9")


def test_contract_recovery_settles_a_claim_by_what_the_inferenceservice_serves(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A deploy that died after its claim: withdrawn when the patch never landed, committed when it did."""
    from ctloop.deploy import deliver, lineage, storage_uri
    from ctloop.deploy.recovery import recover_promotion

    cfg = kube_project(tmp_path, server.port)
    reg = Registry(cfg.registry.uri, cfg.name)
    version = register(cfg, tmp_path)
    uri = storage_uri(cfg, version)
    intent = {"mode": "kubernetes", "storage_uri": uri, "run_id": "run-9"}
    claim, _ = reg.claim_promotion(version, "crash", None, intent)
    assert claim is not None
    out = recover_promotion(cfg)  # died before the patch: the cluster never saw it
    assert out["action"] == "withdrawn" and reg.alias("champion") is None and reg.pending_intent() is None
    claim, _ = reg.claim_promotion(version, "crash", None, intent)
    assert claim is not None
    deliver(cfg, uri, lineage(cfg, version, "run-9", reg.get(version).metadata))  # patched, then died
    out = recover_promotion(cfg)
    assert out["action"] == "committed" and reg.alias("champion") == version
    gets = [r for r in server.requests if r["method"] == "GET"]
    assert len(gets) == 2 and gets[0]["path"] == CONTRACT["request"]["path"]
