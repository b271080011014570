"""A payload sink that accepts and discards every POST (bench_serving.py's logging-overhead baseline).

Run: ``python benchmarks/null_sink_app.py --port PORT``; ``GET /count`` returns the POSTs received.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

COUNT = {"posts": 0}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 202 (POST) or the count (GET)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        COUNT["posts"] += 1
        body = b""
        status = 202
    else:
        body = str(COUNT["posts"]).encode()
        status = 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=a.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
