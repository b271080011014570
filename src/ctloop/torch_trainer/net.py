"""The tabular MLP: one embedding per categorical feature, concatenated with the numeric inputs."""

from __future__ import annotations

import torch
from torch import nn


class TabularMLP(nn.Module):
    """MLP over ``[numeric, embeddings]`` with one logit output (P(class 1) after a sigmoid)."""

    def __init__(self, n_numeric: int, cardinalities: list[int], embedding_dim: int, hidden: list[int],
                 dropout: float) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(card, embedding_dim) for card in cardinalities)
        layers: list[nn.Module] = []
        width = n_numeric + embedding_dim * len(cardinalities)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Return one logit per row."""
        parts = [numeric] + [emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        return self.body(torch.cat(parts, dim=1)).squeeze(1)


def architecture(n_numeric: int, cardinalities: list[int], embedding_dim: int, hidden: list[int],
                 dropout: float) -> dict[str, object]:
    """The constructor arguments, stored in ``model.json`` so the loader rebuilds the same net."""
    return {"n_numeric": n_numeric, "cardinalities": list(cardinalities), "embedding_dim": embedding_dim,
            "hidden": list(hidden), "dropout": dropout}
