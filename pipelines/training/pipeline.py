"""The training pipeline DAG. Parameters carry the whole config, so a cluster run needs no local file."""


from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components import DEFAULT_IMAGE, build_components

PIPELINE_NAME = "ctloop-training"
COMPILED = Path(__file__).with_name("pipeline.yaml")


def build_pipeline(image: str = DEFAULT_IMAGE) -> Any:
    """Build the pipeline function for a runtime image (``kfp.images.runtime`` in the config)."""
    c = build_components(image)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="ctloop continuous training: ingest, validate, split, train, evaluate, gate, "
        "register, deploy.",
    )
    def training(
        config_json: str,
        trigger_json: str = '{"cause": "manual"}',
        run_id: str = "",
        cutoff_date: str = "",
    ) -> dsl.Artifact:
        ing = c.ingest(config_json=config_json, cutoff_date=cutoff_date).set_display_name("ingest")
        val = c.validate(config_json=config_json, dataset=ing.outputs["dataset"]).set_display_name("validate")
        gate = c.validate_gate(config_json=config_json, report=val.outputs["report"])
        gate.set_display_name("validate-gate")
        spl = c.split(config_json=config_json, dataset=ing.outputs["dataset"]).after(gate)
        spl.set_display_name("split")
        tr = c.train(config_json=config_json, train=spl.outputs["train"]).set_display_name("train")
        ev = c.evaluate(
            config_json=config_json,
            model=tr.outputs["model"],
            test=spl.outputs["test"],
            recent=spl.outputs["recent"],
        ).set_display_name("evaluate")
        with dsl.If(ev.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP expression)
            reg = c.register(
                config_json=config_json,
                model=tr.outputs["model"],
                decision=ev.outputs["decision"],
                dataset=ing.outputs["dataset"],
                run_id=run_id,
                kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                trigger_json=trigger_json,
            ).set_display_name("register")
            c.deploy(
                config_json=config_json,
                version=reg.output,
                run_id=run_id,
                kfp_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            ).set_display_name("deploy")
        return ev.outputs["decision"]

    return training


def compile_pipeline(out: str | Path = COMPILED, image: str = DEFAULT_IMAGE) -> Path:
    """Compile the pipeline to KFP IR YAML at ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), package_path=str(out))
    return out
