"""Trainers. The scikit-learn trainer fits the feature transforms on the training split only and
saves them inside the model artifact, so serving cannot skew from training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctloop.config import TrainingConfig
from ctloop.errors import ConfigError, DataError
from ctloop.fastpath.artifact import export_fast_path
from ctloop.model import prepare_frame, save_model
from ctloop.profile import compute_profile
from ctloop.schema import Schema

FAST_PATH_CHECK_ROWS = 2000  # training rows on which the compiled path must agree with the reference


class SklearnParams(BaseModel):
    """``model.params`` for the scikit-learn trainer."""

    model_config = ConfigDict(extra="forbid")

    estimator: Literal["hist_gradient_boosting", "logistic_regression"] = "hist_gradient_boosting"
    max_iter: int = Field(200, ge=1)
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(31, ge=2)
    l2_regularization: float = Field(0.0, ge=0)
    C: float = Field(1.0, gt=0)


def parse_sklearn_params(params: dict[str, Any]) -> SklearnParams:
    """Validate ``model.params``; errors name the field path."""
    try:
        return SklearnParams.model_validate(params)
    except ValidationError as exc:
        msg = "; ".join(f"model.params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(msg) from exc


def build_sklearn_pipeline(numeric: list[str], categorical: list[str], params: SklearnParams, seed: int):  # type: ignore[no-untyped-def]
    """Build the unfitted scikit-learn Pipeline (transforms + estimator)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
             numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    if params.estimator == "hist_gradient_boosting":
        est: Any = HistGradientBoostingClassifier(
            max_iter=params.max_iter,
            learning_rate=params.learning_rate,
            max_leaf_nodes=params.max_leaf_nodes,
            l2_regularization=params.l2_regularization,
            random_state=seed,
        )
    else:
        est = LogisticRegression(C=params.C, max_iter=params.max_iter, random_state=seed)
    return Pipeline([("features", pre), ("model", est)])


def train_sklearn(
    train: pd.DataFrame, schema: Schema, params: dict[str, Any], seed: int, out_dir: str | Path
) -> dict[str, Any]:
    """Fit the scikit-learn trainer on ``train`` and save the model folder to ``out_dir``.

    Returns the manifest written beside the model.
    """
    import sklearn

    p = parse_sklearn_params(params)
    y = train[schema.target]
    if y.nunique() < 2:
        raise DataError(f"training split has a single class in {schema.target!r}; cannot train")
    num, cat = schema.numeric_features, schema.categorical_features
    pipe = build_sklearn_pipeline(num, cat, p, seed)
    pipe.fit(prepare_frame(train, num, cat), y.astype("int64"))
    manifest = {
        "trainer": "sklearn",
        "estimator": p.estimator,
        "params": p.model_dump(),
        "numeric_features": num,
        "categorical_features": cat,
        "target": schema.target,
        "classes": [0, 1],
        "train_rows": int(len(train)),
        "sklearn_version": sklearn.__version__,
    }
    save_model(pipe, manifest, out_dir)
    compute_profile(train, num, cat, schema.target).save(Path(out_dir))
    manifest["fast_path"] = export_fast_path(out_dir, train.head(FAST_PATH_CHECK_ROWS))
    return manifest


def train_model(
    trainer: str, train: pd.DataFrame, schema: Schema, params: dict[str, Any], seed: int, out_dir: str | Path,
    training: TrainingConfig | None = None, progress: bool = False,
) -> dict[str, Any]:
    """Dispatch to the configured trainer (``model.trainer``).

    ``training`` carries the torch trainer's checkpoint settings (``training.checkpoint_*``); without it
    the torch trainer does not checkpoint (a library call never writes into the working directory).
    """
    if trainer == "sklearn":
        return train_sklearn(train, schema, params, seed, out_dir)
    if trainer == "torch":
        from ctloop.torch_trainer.trainer import train_torch

        t = training or TrainingConfig()
        return train_torch(train, schema, params, seed, out_dir,
                           checkpoint_uri=t.checkpoint_uri if training is not None else None,
                           checkpoint_every=t.checkpoint_every_steps, checkpoint_keep=t.checkpoint_keep,
                           progress=progress)
    raise ConfigError(f"model.trainer: {trainer!r} is not available; use 'sklearn' or 'torch'")
