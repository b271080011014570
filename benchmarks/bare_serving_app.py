"""Baseline for bench_serving.py: a bare FastAPI ``async def`` app serving the same model and payload.

Run: ``python benchmarks/bare_serving_app.py --model-dir DIR --port PORT``.
"""

from __future__ import annotations

import argparse

import pandas as pd
import uvicorn
from fastapi import FastAPI, Request

from ctloop.model import load_model


def create_app(model_dir: str) -> FastAPI:
    """The bare app: POST /predict with a V1 body, same response shape as ctloop's V1."""
    model = load_model(model_dir)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = await request.json()
        proba = model.predict_proba(pd.DataFrame(body["instances"]))
        return {"predictions": proba.tolist(), "labels": (proba >= 0.5).astype(int).tolist()}

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    uvicorn.run(create_app(a.model_dir), host="127.0.0.1", port=a.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
