"""The training pipeline: ingest → validate → split → train → evaluate ─gate→ register → deploy."""

from pipelines.training.pipeline import PIPELINE_NAME, build_pipeline, compile_pipeline

__all__ = ["PIPELINE_NAME", "build_pipeline", "compile_pipeline"]
