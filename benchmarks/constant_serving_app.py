"""Peer (d) for bench_serving.py: ctloop's own HTTP stack (KServe ModelServer, ctloop middleware, V1
decoding by KServe) with a model whose ``predict`` returns a constant: the limit of the server itself.

Run: ``python benchmarks/constant_serving_app.py --config ctloop.yaml --model-dir DIR --port PORT``.
"""

from __future__ import annotations

import argparse
from typing import Any


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    from ctloop.config import load_config
    from ctloop.serving.model import CtloopModel
    from ctloop.serving.server import serve

    def constant(self: CtloopModel, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return {"predictions": [0.5], "labels": [0], "model_version": None}

    CtloopModel.predict = constant  # type: ignore[method-assign]
    serve(load_config(a.config), port=a.port, model_dir=a.model_dir)


if __name__ == "__main__":
    main()
