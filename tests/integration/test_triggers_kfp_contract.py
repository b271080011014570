"""The ``kfp`` submitter against a HAND-WRITTEN stand-in of the KFP v2beta1 REST API (no KFP API server can
run here, and none of these answers was captured from a live server).

The stand-in is written from KFP's v2beta1 API as the ``kfp_server_api`` client that ``kfp.Client`` uses
describes it (paths, methods, request and response fields): ``GET /apis/v2beta1/healthz``,
``GET``/``POST /apis/v2beta1/experiments``, ``GET``/``POST /apis/v2beta1/runs`` (list with a
``display_name`` filter, create), ``GET /apis/v2beta1/runs/{run_id}`` and
``POST /apis/v2beta1/runs/{run_id}:terminate`` (which moves the run to ``CANCELING``, as KFP's API server
does before its persistence agent reports ``CANCELED``). It keeps created runs in memory and records
every request, so a test can check what ``kfp.Client`` sent and count each call. Test knobs: the state a
run reports (``FAILED`` with an ``error`` status, ``CANCELED``, ...), a transient ``503 Service
Unavailable`` for the next N requests under ``/apis/v2beta1/runs``, and a create whose answer is lost
(the run is created, the client gets a 503)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ctloop.config import load_config
from ctloop.errors import SubmitError
from ctloop.triggers.service import TriggerService, default_pipeline_file
from ctloop.triggers.submitters import KfpSubmitter, RunRequest
from tests.conftest import free_port
from tests.helpers_triggers import trigger_project

pytestmark = pytest.mark.integration

CREATED = "2026-11-29T10:00:00Z"


class KfpContract(BaseHTTPRequestHandler):
    """Answers as KFP's v2beta1 API (hand-written); state: experiments and runs created so far, every request,
    and every terminate call (``terminated``: run ids, one per call)."""

    requests: list[dict[str, Any]]
    runs: dict[str, dict[str, Any]]
    experiments: dict[str, dict[str, Any]]
    states: dict[str, str]  # run id -> state reported by GET (default SUCCEEDED)
    unavailable: list[int]  # [n]: answer the next n requests under /runs with 503
    lose_create_answer: list[int]  # [n]: create the next n runs but answer 503
    terminated: list[str]  # run ids, one per POST /apis/v2beta1/runs/{run_id}:terminate

    def _unavailable(self, path: str) -> bool:
        if path.startswith("/apis/v2beta1/runs") and self.unavailable[0] > 0:
            self.unavailable[0] -= 1
            self._send(503, {"error": "upstream connect error", "code": 14, "message": "unavailable"})
            return True
        return False

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body: Any = None) -> tuple[str, dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        self.requests.append({"method": self.command, "path": url.path, "query": q, "body": body})
        return url.path, q

    @staticmethod
    def _match(items: list[dict[str, Any]], q: dict[str, list[str]]) -> list[dict[str, Any]]:
        if "filter" not in q:
            return items
        flt = json.loads(q["filter"][0])
        out = items
        for p in flt.get("predicates", []):
            assert p["operation"] in ("EQUALS", 1) and p["key"] == "display_name", p
            value = p.get("stringValue", p.get("string_value"))
            out = [i for i in out if i["display_name"] == value]
        return out

    def do_GET(self) -> None:  # noqa: N802
        path, q = self._record()
        if self._unavailable(path):
            return None
        if path == "/apis/v2beta1/healthz":
            return self._send(200, {"multi_user": False})
        if path == "/apis/v2beta1/experiments":
            found = self._match(list(self.experiments.values()), q)
            return self._send(200, {"experiments": found, "total_size": len(found)} if found else {})
        if path == "/apis/v2beta1/runs":
            found = self._match(list(self.runs.values()), q)
            return self._send(200, {"runs": found, "total_size": len(found)} if found else {})
        if path.startswith("/apis/v2beta1/runs/"):
            run = self.runs.get(path.rsplit("/", 1)[-1])
            if run is None:
                return self._send(404, {"error": "run not found", "code": 5, "message": "run not found"})
            state = self.states.get(run["run_id"], "SUCCEEDED")
            doc = {**run, "state": state, "finished_at": CREATED}
            if state == "FAILED":
                doc["error"] = {"code": 2, "message": "train: exited with code 137 (OOMKilled)"}
            return self._send(200, doc)
        return self._send(404, {"code": 5, "message": f"no route {path}"})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        path, _q = self._record(body)
        if self._unavailable(path):
            return None
        if path == "/apis/v2beta1/experiments":
            exp = {
                "experiment_id": f"exp-{len(self.experiments) + 1}",
                "display_name": body["display_name"],
                "created_at": CREATED,
                "storage_state": "AVAILABLE",
            }
            self.experiments[exp["experiment_id"]] = exp
            return self._send(200, exp)
        if path == "/apis/v2beta1/runs":
            run_id = f"0b5e{len(self.runs):04d}-aaaa-bbbb-cccc-000000000000"
            run = {
                "run_id": run_id,
                "display_name": body["display_name"],
                "experiment_id": body["experiment_id"],
                "storage_state": "AVAILABLE",
                "state": "PENDING",
                "created_at": CREATED,
                "runtime_config": body.get("runtime_config", {}),
            }
            self.runs[run_id] = run
            if self.lose_create_answer[0] > 0:
                self.lose_create_answer[0] -= 1
                return self._send(503, {"error": "upstream request timeout", "code": 14, "message": "timeout"})
            return self._send(200, run)
        if path.startswith("/apis/v2beta1/runs/") and path.endswith(":terminate"):
            run_id = path[len("/apis/v2beta1/runs/"):-len(":terminate")]
            self.terminated.append(run_id)
            if run_id not in self.runs:
                return self._send(404, {"error": "run not found", "code": 5, "message": "run not found"})
            self.states[run_id] = "CANCELING"
            return self._send(200, {})
        return self._send(404, {"code": 5, "message": f"no route {path}"})


@pytest.fixture
def kfp_server():  # type: ignore[no-untyped-def]
    handler = type("H", (KfpContract,), {"requests": [], "runs": {}, "experiments": {}, "states": {},
                                         "unavailable": [0], "lose_create_answer": [0], "terminated": []})
    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{port}", handler
    finally:
        srv.shutdown()
        srv.server_close()


def test_kfp_submitter_against_the_v2beta1_contract(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    host, contract = kfp_server
    cfg = load_config(trigger_project(tmp_path / "p", submitter="kfp"))
    cfg = cfg.model_copy(update={"kfp": cfg.kfp.model_copy(update={"host": host})})
    sub = KfpSubmitter(cfg, default_pipeline_file())
    req = RunRequest(7, "churn-alert-0123456789ab", {"cause": "drift", "reason": "alert firing"})
    first = sub.submit(req)
    assert first.run_status == "submitted" and first.external_id == "0b5e0000-aaaa-bbbb-cccc-000000000000"
    posts = [r for r in contract.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]
    (post,) = posts
    body = post["body"]
    assert body["display_name"] == req.run_id and body["experiment_id"] == "exp-1"
    params = body["runtime_config"]["parameters"]
    assert json.loads(params["config_json"]) == json.loads(cfg.to_json())
    assert json.loads(params["trigger_json"]) == req.trigger and params["run_id"] == req.run_id
    # with a platform spec (kfp-kubernetes: GPU spot scheduling) the client nests both specs
    spec = body["pipeline_spec"].get("pipeline_spec", body["pipeline_spec"])
    assert spec["pipelineInfo"]["name"]
    # the same run again (e.g. recovery after a crash): found by its name, not created twice
    again = sub.submit(req)
    assert again.external_id == first.external_id
    assert (
        len([r for r in contract.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"])
        == 1
    )
    listed = [r for r in contract.requests if r["method"] == "GET" and r["path"] == "/apis/v2beta1/runs"]
    assert json.loads(listed[-1]["query"]["filter"][0])["predicates"][0]["stringValue"] == req.run_id
    done = sub.poll(req, first.external_id)
    assert done is not None and done.run_status == "succeeded"


def test_kfp_submitter_through_the_service_and_errors(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry

    from ctloop.triggers.policy import Trigger

    host, contract = kfp_server
    cfg = load_config(trigger_project(tmp_path / "p", submitter="kfp"))
    with pytest.raises(SubmitError, match="kfp.host"):
        KfpSubmitter(cfg, default_pipeline_file())
    cfg = cfg.model_copy(update={"kfp": cfg.kfp.model_copy(update={"host": host})})
    svc = TriggerService.create(cfg, CollectorRegistry())
    try:
        assert svc.submitter.name == "kfp"
        d = svc.handle(Trigger("manual", "churn", episode="e1", reason="kfp please"))
        row = svc.ledger.get(d.trigger_id)
        assert row.run_status == "submitted" and row.external_id in contract.runs
        svc.tick()
        assert svc.ledger.get(d.trigger_id).run_status == "succeeded"
    finally:
        svc.stop()
    # an unreachable KFP: the trigger stays in the ledger as submit_failed with the error
    dead = cfg.model_copy(
        update={
            "kfp": cfg.kfp.model_copy(update={"host": f"http://127.0.0.1:{free_port()}"}),
            "triggers": cfg.triggers.model_copy(update={"ledger": str(tmp_path / "l2.sqlite")}),
        }
    )
    svc2 = TriggerService.create(dead, CollectorRegistry())
    try:
        d = svc2.handle(Trigger("manual", "churn", episode="e2", reason="kfp down"))
        row = svc2.ledger.get(d.trigger_id)
        assert row.run_status == "submit_failed" and "cannot" in row.detail["error"]
    finally:
        svc2.stop()


def _kfp(tmp_path: Path, host: str, **triggers: Any) -> KfpSubmitter:
    cfg = load_config(trigger_project(tmp_path / "p", submitter="kfp", **triggers))
    cfg = cfg.model_copy(update={"kfp": cfg.kfp.model_copy(update={"host": host})})
    sub = KfpSubmitter(cfg, default_pipeline_file())
    sub.backoff_s = 0.01
    return sub


def _posts(contract: Any) -> list[dict[str, Any]]:
    return [r for r in contract.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]


def test_kfp_states_map_to_ledger_statuses(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    host, contract = kfp_server
    sub = _kfp(tmp_path, host)
    expected = {"FAILED": "failed", "CANCELED": "canceled", "SUCCEEDED": "succeeded", "RUNNING": "running"}
    for i, (state, status) in enumerate(expected.items()):
        req = RunRequest(i, f"churn-manual-{i:012d}", {"cause": "manual"})
        ext = sub.submit(req).external_id
        contract.states[ext] = state
        got = sub.poll(req, ext)
        assert got is not None and got.run_status == status, (state, got)
        assert (got.error == "train: exited with code 137 (OOMKilled)") == (state == "FAILED")
        found = sub.lookup(req)  # what recovery asks: the listed run carries its state as well
        assert found is not None and found.external_id == ext
    assert sub.lookup(RunRequest(9, "churn-manual-never", {})) is None
    assert len(_posts(contract)) == len(expected)


def test_kfp_transient_503_is_retried_and_creates_one_run(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    host, contract = kfp_server
    sub = _kfp(tmp_path, host)
    # two 503s on the lookup, then the create goes through
    contract.unavailable[0] = 2
    first = sub.submit(RunRequest(1, "churn-alert-000000000001", {"cause": "drift"}))
    assert first.run_status == "submitted" and len(contract.runs) == 1
    codes = [r["method"] + " " + r["path"] for r in contract.requests if "/runs" in r["path"]]
    assert codes[:3] == ["GET /apis/v2beta1/runs"] * 3  # 503, 503, answered
    # the create succeeds on the server but its answer is lost: the retry finds it by name, no 2nd run
    contract.lose_create_answer[0] = 1
    req = RunRequest(2, "churn-alert-000000000002", {"cause": "drift"})
    second = sub.submit(req)
    assert len(contract.runs) == 2 and len(_posts(contract)) == 2
    assert second.external_id == next(r["run_id"] for r in contract.runs.values()
                                      if r["display_name"] == req.run_id)
    # a server that stays unavailable: a clear error after the attempts
    contract.unavailable[0] = 100
    with pytest.raises(SubmitError, match=r"cannot list runs \(HTTP 503 Service Unavailable\) after 4 attempt"):
        sub.submit(RunRequest(3, "churn-alert-000000000003", {"cause": "drift"}))
    contract.unavailable[0] = 0
    assert len(contract.runs) == 2


def test_recovery_looks_up_the_run_before_submitting(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    """A trigger left ``pending`` whose run was created just before the crash: recovery finds it by
    name and records it; nothing is created twice."""
    from prometheus_client import CollectorRegistry

    from ctloop.triggers.policy import Trigger

    host, contract = kfp_server
    sub = _kfp(tmp_path, host, cooldown_minutes=0)
    svc = TriggerService.create(sub.cfg, CollectorRegistry(), submitter=sub)
    try:
        decision = svc.policy.decide(Trigger("manual", "churn", episode="e1", reason="crash test"))
        row = svc.ledger.get(decision.trigger_id)
        assert row.run_status == "pending"
        sub.submit(svc._request(row))  # the submission that happened before the crash
        contract.states[next(iter(contract.runs))] = "RUNNING"
        svc.recover()
        after = svc.ledger.get(decision.trigger_id)
        assert after.run_status == "submitted" and after.external_id in contract.runs
        assert len(_posts(contract)) == 1
        # once that run ended, a pending trigger whose run does not exist yet is submitted (once)
        contract.states[after.external_id] = "SUCCEEDED"
        svc.tick()
        assert svc.ledger.get(decision.trigger_id).run_status == "succeeded"
        d2 = svc.policy.decide(Trigger("manual", "churn", episode="e2", reason="second"))
        svc.recover()
        assert svc.ledger.get(d2.trigger_id).run_status == "submitted" and len(_posts(contract)) == 2
    finally:
        svc.stop()


def test_the_watcher_submits_the_pipeline_compiled_for_its_config(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    """What the watcher submits carries the config's images, train-step scheduling and storage env (not
    the reference pipeline shipped in the image), and the config's pipeline root when it is a URI."""
    from prometheus_client import CollectorRegistry

    from ctloop.config import StorageConfig, TrainingConfig
    from ctloop.triggers.policy import Trigger

    host, contract = kfp_server
    cfg = load_config(trigger_project(tmp_path / "p", submitter="kfp"))
    cfg = cfg.model_copy(update={
        "kfp": cfg.kfp.model_copy(update={"host": host, "pipeline_root": "minio://mlpipeline/ctloop/root",
                                          "images": cfg.kfp.images.model_copy(
                                              update={"runtime": "registry.example/ctloop:9.9"})}),
        "training": TrainingConfig(accelerator_limit=0),
        "storage": StorageConfig(env={"AWS_ENDPOINT_URL": "http://minio:9000"}, secret="s3-creds")})
    svc = TriggerService.create(cfg, CollectorRegistry())
    pipeline_file = Path(svc.submitter.pipeline_file)  # type: ignore[attr-defined]
    try:
        svc.handle(Trigger("manual", "churn", episode="e1", reason="compiled for me"))
        (post,) = _posts(contract)
        assert post["body"]["runtime_config"]["pipeline_root"] == "minio://mlpipeline/ctloop/root"
        spec = post["body"]["pipeline_spec"]
        executors = spec["pipeline_spec"]["deploymentSpec"]["executors"]
        ingest = executors["exec-ingest"]["container"]
        assert ingest["image"] == "registry.example/ctloop:9.9"
        assert ingest["env"] == [{"name": "AWS_ENDPOINT_URL", "value": "http://minio:9000"}]
        assert "accelerator" not in executors["exec-train"]["container"]["resources"]
        platform = spec["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert platform["exec-deploy"]["secretAsEnv"][0]["secretName"] == "s3-creds"
        assert pipeline_file.is_file()
    finally:
        svc.stop()
    assert not pipeline_file.exists()  # the compiled file lives as long as the service


def test_a_local_pipeline_root_is_left_to_the_kfp_server(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    host, contract = kfp_server
    sub = _kfp(tmp_path, host)
    assert "://" not in sub.cfg.kfp.pipeline_root
    sub.submit(RunRequest(1, "churn-manual-000000000001", {"cause": "manual"}))
    (post,) = _posts(contract)
    assert "pipeline_root" not in post["body"].get("runtime_config", {})


def test_cancel_terminates_the_run_once_through_the_service(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry

    from ctloop.errors import CancelConflictError
    from ctloop.triggers.policy import Trigger

    host, contract = kfp_server
    sub = _kfp(tmp_path, host, cooldown_minutes=0)
    svc = TriggerService.create(sub.cfg, CollectorRegistry(), submitter=sub)
    try:
        d = svc.handle(Trigger("manual", "churn", episode="e1", reason="to be canceled"))
        ext = svc.ledger.get(d.trigger_id).external_id
        assert ext in contract.runs
        contract.states[ext] = "RUNNING"
        row = svc.cancel(d.trigger_id, "by ops: wrong window")
        assert contract.terminated == [ext]  # exactly once, the run KFP knows by this trigger's run name
        (term,) = [r for r in contract.requests if r["path"].endswith(":terminate")]
        assert (term["method"], term["path"]) == ("POST", f"/apis/v2beta1/runs/{ext}:terminate")
        assert (row.run_status, row.external_id) == ("canceled", ext)
        assert row.detail["cancel"]["reason"] == "by ops: wrong window"
        svc.tick()  # KFP says CANCELING now: the poll does not reopen the canceled row
        assert svc.ledger.get(d.trigger_id).run_status == "canceled"
        # a run that already ended is not terminated: the service answers with its status
        d2 = svc.handle(Trigger("manual", "churn", episode="e2", reason="finishes first"))
        ext2 = svc.ledger.get(d2.trigger_id).external_id
        contract.states[ext2] = "SUCCEEDED"
        with pytest.raises(CancelConflictError, match="already succeeded"):
            svc.cancel(d2.trigger_id, "too late")
        assert svc.ledger.get(d2.trigger_id).run_status == "succeeded"
        assert contract.terminated == [ext]
    finally:
        svc.stop()


def test_cancel_of_a_run_kfp_does_not_know(tmp_path: Path, kfp_server) -> None:  # type: ignore[no-untyped-def]
    host, contract = kfp_server
    sub = _kfp(tmp_path, host)
    assert sub.cancel(RunRequest(1, "churn-manual-000000000404", {"cause": "manual"})) is None
    assert contract.terminated == []
