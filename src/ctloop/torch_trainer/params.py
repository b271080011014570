"""``model.params`` of the torch trainer, validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from ctloop.errors import ConfigError


class TorchParams(BaseModel):
    """Hyper-parameters of the tabular MLP (``model.params`` when ``model.trainer: torch``)."""

    model_config = ConfigDict(extra="forbid")

    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 32], min_length=1)
    embedding_dim: int = Field(4, ge=1, le=256)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(30, ge=1)
    patience: int = Field(4, ge=1)
    validation_fraction: float = Field(0.15, gt=0, lt=0.9)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True
    cpu_threads: int = Field(1, ge=0, le=256)  # torch intra-op threads on CPU; 0 keeps torch's default


def parse_torch_params(params: dict[str, Any]) -> TorchParams:
    """Validate ``model.params`` for the torch trainer; errors name ``model.params.<field>``.

    Raises:
        ConfigError: On unknown keys or bad values.
    """
    try:
        return TorchParams.model_validate(params)
    except ValidationError as exc:
        msg = "; ".join(
            f"model.params.{'.'.join(map(str, e['loc'])) or '<root>'}: "
            f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{msg} (model.trainer: torch)") from exc
