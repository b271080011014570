"""Helpers for the torch trainer tests: tiny data, and a training child process that can be killed.

Run as ``python -m tests.helpers_torch DATA OUT CKPT EVERY``: trains on the parquet file ``DATA`` and
prints ``STEP n`` after every optimiser step (flushed), so a parent can kill it at a chosen step.
Exit code 143 means it stopped on SIGTERM after writing a checkpoint.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.datagen import generate_day
from ctloop.project import example_schema

TINY_PARAMS: dict[str, Any] = {"hidden": [16, 8], "embedding_dim": 3, "dropout": 0.2, "batch_size": 32,
                               "max_epochs": 6, "patience": 3, "learning_rate": 0.01}


def tiny_frame(rows: int = 480, seed: int = 3) -> pd.DataFrame:
    """A small training frame from the synthetic stream."""
    return generate_day(dt.date(2026, 1, 1), rows, seed).reset_index(drop=True)


def state_of(model_dir: Path) -> dict[str, Any]:
    """The saved weights of a torch model folder."""
    import torch

    return torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)


def main(argv: list[str]) -> int:
    """Child-process entry point."""
    from ctloop.errors import TrainingInterrupted
    from ctloop.torch_trainer.trainer import train_torch

    data, out, ckpt, every = argv
    frame = pd.read_parquet(data)

    def on_step(step: int) -> None:
        print(f"STEP {step}", flush=True)

    try:
        man = train_torch(frame, example_schema(), TINY_PARAMS, 7, out, checkpoint_uri=ckpt,
                          checkpoint_every=int(every), on_step=on_step)
    except TrainingInterrupted as exc:
        print(f"INTERRUPTED {exc}", flush=True)
        return exc.exit_code
    print(f"RESUMED_FROM {man['checkpoint']['resumed_from_step']}", flush=True)
    print(f"DONE {man['steps']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
