"""Torch trainer for tabular data: an MLP with categorical embeddings, checkpoint/resume, preemption-safe.

Nothing here imports torch at import time; :func:`train_torch` and :func:`load_torch_predictor` import
it when called, so ``import ctloop`` stays light.
"""

from ctloop.torch_trainer.params import TorchParams, parse_torch_params

__all__ = ["TorchParams", "load_torch_predictor", "parse_torch_params", "train_torch"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "train_torch":
        from ctloop.torch_trainer.trainer import train_torch

        return train_torch
    if name == "load_torch_predictor":
        from ctloop.torch_trainer.artifact import load_torch_predictor

        return load_torch_predictor
    raise AttributeError(name)
