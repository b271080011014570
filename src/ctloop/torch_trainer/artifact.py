"""Load a torch model folder for prediction (CPU by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.errors import ModelError
from ctloop.torch_trainer.preprocess import Preprocessor


class TorchPredictor:
    """The fitted preprocessing plus the MLP in eval mode; ``predict_proba`` gives P(class 1)."""

    def __init__(self, net: Any, pre: Preprocessor, batch_size: int = 65536) -> None:
        self.net = net
        self.pre = pre
        self.batch_size = batch_size

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(class 1) per row of a prepared frame (see :func:`ctloop.model.prepare_frame`)."""
        import torch

        num, cat = self.pre.transform(frame)
        out = np.empty(len(frame), dtype="float64")
        with torch.no_grad():
            for i in range(0, len(frame), self.batch_size):
                logits = self.net(torch.from_numpy(num[i:i + self.batch_size]),
                                  torch.from_numpy(cat[i:i + self.batch_size]))
                out[i:i + self.batch_size] = torch.sigmoid(logits.double()).numpy()
        return out


def load_torch_predictor(model_dir: str | Path, manifest: dict[str, Any]) -> TorchPredictor:
    """Rebuild the MLP from ``model.json`` and load its weights.

    Raises:
        ModelError: When the weights or the manifest's torch blocks are missing or corrupt.
    """
    import torch

    from ctloop.torch_trainer.net import TabularMLP

    d = Path(model_dir)
    weights = d / str(manifest.get("weights", "model.pt"))
    try:
        net = TabularMLP(**manifest["architecture"])
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except KeyError as exc:
        raise ModelError(f"{d / 'model.json'}: torch manifest lacks {exc}") from exc
    except FileNotFoundError as exc:
        raise ModelError(f"{weights}: model weights not found") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types on corrupt files
        raise ModelError(f"{weights}: cannot load torch weights ({exc})") from exc
    net.eval()
    return TorchPredictor(net, Preprocessor.from_dict(manifest["preprocessing"]))
