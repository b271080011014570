"""The training pipeline DAG. Parameters carry the whole config, so a cluster run needs no local file."""


import dataclasses
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes

from components import DEFAULT_IMAGE, build_components
from components import training as training_components
from ctloop.config import ProjectConfig, StorageConfig, TrainingConfig

PIPELINE_NAME = "ctloop-training"
COMPILED = Path(__file__).with_name("pipeline.yaml")


def schedule_train(task: Any, training: TrainingConfig) -> Any:
    """Put the train task on the GPU spot pool, as ``training`` says (only this task gets these).

    GPU accelerator + limit, CPU/memory requests and limits, the spot pool's node selector and taint
    toleration (none when ``accelerator_limit`` is 0), the checkpoint PVC, a timeout, and retries with
    backoff so a preempted pod is retried and resumes from its checkpoint.
    """
    t = training
    task.set_cpu_request(t.cpu_request).set_memory_request(t.memory_request)
    if t.cpu_limit:
        task.set_cpu_limit(t.cpu_limit)
    if t.memory_limit:
        task.set_memory_limit(t.memory_limit)
    if t.accelerator_limit > 0:
        task.set_accelerator_type(t.accelerator_type).set_accelerator_limit(t.accelerator_limit)
        for key, value in sorted(t.node_selector.items()):
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for tol in t.tolerations:
            kubernetes.add_toleration(task, key=tol.key, operator=tol.operator, value=tol.value,
                                      effect=tol.effect)
    if t.checkpoint_pvc:
        kubernetes.mount_pvc(task, pvc_name=t.checkpoint_pvc, mount_path=t.checkpoint_mount_path)
    kubernetes.set_timeout(task, t.timeout_seconds)
    if t.retries:
        task.set_retry(num_retries=t.retries, backoff_duration=f"{t.backoff_seconds}s",
                       backoff_factor=t.backoff_factor, backoff_max_duration=f"{t.backoff_max_seconds}s")
    return task


def use_storage(task: Any, storage: StorageConfig | None) -> Any:
    """Give ``task`` the object-store environment: ``storage.env`` as values, ``storage.secret``'s keys
    through ``secretKeyRef`` (the Secret must exist in the pipeline's namespace). No-op for ``None``."""
    if storage is None:
        return task
    for name, value in sorted(storage.env.items()):
        task.set_env_variable(name, value)
    if storage.secret:
        kubernetes.use_secret_as_env(task, secret_name=storage.secret,
                                     secret_key_to_env={k: e for e, k in sorted(storage.secret_keys.items())})
    return task


def build_pipeline(image: str = DEFAULT_IMAGE, training: TrainingConfig | None = None,
                   train_image: str | None = None, storage: StorageConfig | None = None) -> Any:
    """Build the pipeline function.

    Args:
        image: Runtime image of every step (``kfp.images.runtime``).
        training: Where the train step runs (``training`` in the config; defaults when ``None``).
        train_image: Image of the train step (``kfp.images.trainer_gpu``); ``image`` when ``None``.
        storage: Object-store environment of every step (``storage`` in the config); none when ``None``.
    """
    c = build_components(image)
    if train_image and train_image != image:
        c = dataclasses.replace(c, train=dsl.component(training_components.train, base_image=train_image,
                                                       install_kfp_package=False))
    train_cfg = training or TrainingConfig()

    def env(task: Any) -> Any:
        return use_storage(task, storage)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="ctloop continuous training: ingest, validate, split, features, train, evaluate, gate, "
        "register, deploy.",
    )
    def training_pipeline(
        config_json: str,
        trigger_json: str = '{"cause": "manual"}',
        run_id: str = "",
        cutoff_date: str = "",
    ) -> dsl.Artifact:
        ing = env(c.ingest(config_json=config_json, cutoff_date=cutoff_date)).set_display_name("ingest")
        val = env(c.validate(config_json=config_json, dataset=ing.outputs["dataset"])).set_display_name("validate")
        gate = env(c.validate_gate(config_json=config_json, report=val.outputs["report"]))
        gate.set_display_name("validate-gate")
        spl = env(c.split(config_json=config_json, dataset=ing.outputs["dataset"])).after(gate)
        spl.set_display_name("split")
        feat = env(c.features(config_json=config_json, train=spl.outputs["train"])).set_display_name("features")
        tr = env(c.train(config_json=config_json, train=feat.outputs["table"], features=feat.outputs["state"]))
        tr.set_display_name("train")
        schedule_train(tr, train_cfg)
        ev = env(c.evaluate(
            config_json=config_json,
            model=tr.outputs["model"],
            test=spl.outputs["test"],
            recent=spl.outputs["recent"],
        )).set_display_name("evaluate")
        with dsl.If(ev.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP expression)
            reg = env(c.register(
                config_json=config_json,
                model=tr.outputs["model"],
                decision=ev.outputs["decision"],
                dataset=ing.outputs["dataset"],
                run_id=run_id,
                kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                trigger_json=trigger_json,
            )).set_display_name("register")
            env(c.deploy(
                config_json=config_json,
                version=reg.output,
                run_id=run_id,
                kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            )).set_display_name("deploy")
        return ev.outputs["decision"]

    return training_pipeline


def compile_pipeline(out: str | Path = COMPILED, image: str = DEFAULT_IMAGE,
                     training: TrainingConfig | None = None, train_image: str | None = None,
                     storage: StorageConfig | None = None) -> Path:
    """Compile the pipeline to KFP IR YAML at ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image, training, train_image, storage), package_path=str(out))
    return out


def compile_for_config(cfg: ProjectConfig, out: str | Path) -> Path:
    """Compile the pipeline as ``cfg`` places it: its images, the train step's scheduling, and the
    object-store environment of every step (what ``ctloop compile --config`` and the watcher submit)."""
    return compile_pipeline(out, image=cfg.kfp.images.runtime, training=cfg.training,
                            train_image=cfg.kfp.images.trainer_gpu, storage=cfg.storage)
