"""The training pipeline: ingest → validate → split → train → evaluate ─gate→ register → deploy."""

from pipelines.training.pipeline import (
    COMPILED,
    PIPELINE_NAME,
    build_pipeline,
    compile_for_config,
    compile_pipeline,
)

__all__ = ["COMPILED", "PIPELINE_NAME", "build_pipeline", "compile_for_config", "compile_pipeline"]
