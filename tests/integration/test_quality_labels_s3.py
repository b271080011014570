"""``ctloop labels push --file s3://...``: label files read through fsspec from a real S3 API server
(moto in server mode on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ctloop.errors import ConfigError
from ctloop.quality.labels import read_label_file
from tests.conftest import free_port

pytestmark = [pytest.mark.integration]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "moto.log").read_text()) from None
                time.sleep(0.1)
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(k, v)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_label_file_from_s3(s3: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3})
    fs.mkdir("labels-bucket")
    frame = pd.DataFrame({"id": ["a-1", "a-2"], "label": [1, 0], "time": ["2026-03-02T00:00:00Z"] * 2})
    with fs.open("labels-bucket/day/labels.parquet", "wb") as f:
        frame.to_parquet(f)
    rows = read_label_file("s3://labels-bucket/day/labels.parquet")
    assert rows == [{"id": "a-1", "label": 1, "time": "2026-03-02T00:00:00Z"},
                    {"id": "a-2", "label": 0, "time": "2026-03-02T00:00:00Z"}]
    with pytest.raises(ConfigError, match="cannot read labels"):
        read_label_file("s3://labels-bucket/day/missing.parquet")
