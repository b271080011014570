"""ctloop: continuous training for Kubeflow Pipelines."""

__version__ = "0.1.0"
