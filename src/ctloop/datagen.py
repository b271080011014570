"""Deterministic synthetic tabular stream with optional covariate shift and concept drift.

Pure concept drift (``DriftSpec.concept_start``) changes only P(label | inputs): the inputs are drawn
exactly as on a stable stream (same random draws), so every input-drift score stays flat.

Each day is one partition ``date=YYYY-MM-DD/part-0.parquet`` holding a row id (``YYYYMMDD-N``, unique
across the stream), the features and the binary label.
A day's rows depend only on (seed, date, drift settings), so regenerating a range reproduces it.
:func:`write_stream` writes to a local folder, :func:`write_stream_uri` to an fsspec URI (``s3://``, ...).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = [
    "age",
    "income",
    "tenure_months",
    "balance",
    "num_products",
    "credit_score",
    "txn_count_30d",
    "avg_txn_amount",
    "days_since_login",
]
CATEGORICAL = {
    "region": (["north", "south", "east", "west"], [0.3, 0.25, 0.25, 0.2]),
    "plan": (["basic", "plus", "premium"], [0.5, 0.35, 0.15]),
    "channel": (["web", "mobile", "branch"], [0.45, 0.4, 0.15]),
}
TARGET = "label"
ID = "id"


@dataclass(frozen=True)
class DriftSpec:
    """How strongly, and from which day, the stream drifts."""

    start: dt.date | None = None
    covariate: float = 1.0
    concept: float = 1.0
    ramp_days: int = 1
    concept_start: dt.date | None = None
    concept_shift: float = 1.0

    def strength(self, day: dt.date) -> float:
        """Drift strength on ``day`` in [0, 1] (0 before the start, ramping to 1)."""
        return _ramp(self.start, self.ramp_days, day)

    def concept_strength(self, day: dt.date) -> float:
        """Pure concept drift on ``day`` in [0, 1]: how far P(label | inputs) has moved to the new rule."""
        return self.concept_shift * _ramp(self.concept_start, self.ramp_days, day)


def _ramp(start: dt.date | None, ramp_days: int, day: dt.date) -> float:
    if start is None or day < start:
        return 0.0
    return min(1.0, ((day - start).days + 1) / max(1, ramp_days))


def _day_rng(seed: int, day: dt.date) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def concept_logit(
    credit: np.ndarray, login: np.ndarray, tenure: np.ndarray, txn: np.ndarray, cats: dict[str, np.ndarray]
) -> np.ndarray:
    """The label's log-odds after pure concept drift: the same inputs, a different rule (credit score and
    activity now point the other way, region and transaction count start to matter)."""
    return 1.8 * (
        -0.3
        + 0.8 * (credit - 680) / 60
        - 0.6 * (login - 8) / 8
        + 1.0 * (txn - 20) / 8
        + 0.2 * (tenure - 36) / 30
        + 0.9 * (cats["region"] == "west")
        - 0.6 * (cats["plan"] == "basic")
    )


def generate_day(day: dt.date, rows: int, seed: int, drift: DriftSpec | None = None,
                 id_column: str = ID) -> pd.DataFrame:
    """Generate one day of labelled rows.

    Args:
        day: The partition date.
        rows: Number of rows.
        seed: Stream seed.
        drift: Drift settings; ``None`` for a stable stream.
        id_column: Name of the row id column (``data.id_column``).
    """
    drift = drift or DriftSpec()
    s = drift.strength(day)
    cov, con = s * drift.covariate, s * drift.concept
    rng = _day_rng(seed, day)
    n = rows
    age = np.clip(rng.normal(42 + 6 * cov, 12, n), 18, 90)
    income = np.exp(rng.normal(10.8 - 0.35 * cov, 0.5, n))
    tenure = np.clip(rng.gamma(2.0, 18.0, n), 0, 360)
    balance = np.maximum(0, rng.normal(income * 0.15, income * 0.1 + 1))
    num_products = rng.poisson(1.8, n) + 1
    credit = np.clip(rng.normal(680 - 40 * cov + (income - 50_000) / 4000, 60, n), 300, 850)
    txn = rng.poisson(np.maximum(1, 20 + tenure / 24 - 8 * cov), n).astype(float)
    avg_txn = np.exp(rng.normal(3.8 + 0.4 * cov, 0.6, n))
    login = rng.exponential(7 + 10 * cov, n)
    cats = {}
    for name, (values, probs) in CATEGORICAL.items():
        p = np.asarray(probs, dtype=float)
        if name == "region" and cov > 0:
            p = (1 - 0.6 * cov) * p + 0.6 * cov * np.array([0.05, 0.05, 0.1, 0.8])
        if name == "channel" and cov > 0:
            p = (1 - 0.5 * cov) * p + 0.5 * cov * np.array([0.1, 0.85, 0.05])
        cats[name] = rng.choice(values, size=n, p=p / p.sum())
    # Label: logistic model; concept drift flips/changes some relationships.
    z = 1.8 * (
        -0.4
        - 0.9 * (credit - 680) / 60
        + 0.6 * (login - 8) / 8
        - 0.5 * (tenure - 36) / 30
        - 0.35 * (num_products - 2.8)
        + 0.4 * (cats["plan"] == "basic")
        - 0.3 * (cats["channel"] == "branch")
        + con * (1.6 * (txn - 20) / 8 + 1.2 * (cats["region"] == "west") - 1.2 * (login - 8) / 8)
    )
    pure = drift.concept_strength(day)
    if pure:
        z = (1 - pure) * z + pure * concept_logit(credit, login, tenure, txn, cats)
    label = (rng.random(n) < 1 / (1 + np.exp(-z))).astype("int64")
    df = pd.DataFrame(
        {
            id_column: pd.Series([f"{day:%Y%m%d}-{i}" for i in range(n)], dtype="string"),
            "age": age.round(1),
            "income": income.round(2),
            "tenure_months": tenure.round(1),
            "balance": balance.round(2),
            "num_products": num_products.astype("int64"),
            "credit_score": credit.round(0),
            "txn_count_30d": txn,
            "avg_txn_amount": avg_txn.round(2),
            "days_since_login": login.round(2),
            **{k: pd.Series(v, dtype="string") for k, v in cats.items()},
            TARGET: label,
        }
    )
    missing = rng.random(n) < 0.01
    df.loc[missing, "balance"] = np.nan
    return df


def write_stream(
    out: str | Path,
    start: dt.date,
    days: int,
    seed: int,
    rows_per_day: int = 500,
    drift: DriftSpec | None = None,
    id_column: str = ID,
) -> list[Path]:
    """Write ``days`` daily partitions under ``out`` and return the files written."""
    root = Path(out)
    written = []
    for day, frame in _days(start, days, seed, rows_per_day, drift, id_column):
        part = root / f"date={day.isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        path = part / "part-0.parquet"
        tmp = part / ".part-0.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        written.append(path)
    return written


def _days(start: dt.date, days: int, seed: int, rows_per_day: int, drift: DriftSpec | None,
          id_column: str) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """Each day of the stream with its generated rows, one at a time."""
    for i in range(days):
        day = start + dt.timedelta(days=i)
        yield day, generate_day(day, rows_per_day, seed, drift, id_column)


def is_remote(out: str) -> bool:
    """Whether ``out`` names an object store (an fsspec URI other than ``file://``)."""
    return "://" in out and not out.startswith("file://")


def write_stream_uri(
    uri: str,
    start: dt.date,
    days: int,
    seed: int,
    rows_per_day: int = 500,
    drift: DriftSpec | None = None,
    id_column: str = ID,
) -> list[str]:
    """Write ``days`` daily partitions under an fsspec ``uri`` (one PUT per file, so a reader never sees
    half a partition file); return the URIs written. Credentials and endpoint come from the store's
    usual environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ... for ``s3://``).

    Raises:
        DataError: When the store cannot be opened or written.
    """
    import fsspec

    from ctloop.errors import DataError

    try:
        fs, root = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise DataError(f"--out {uri!r}: cannot open this storage ({exc})") from exc
    written = []
    for day, frame in _days(start, days, seed, rows_per_day, drift, id_column):
        path = f"{root.rstrip('/')}/date={day.isoformat()}/part-0.parquet"
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        try:
            fs.pipe_file(path, buf.getvalue())
        except OSError as exc:
            raise DataError(f"{fs.unstrip_protocol(path)}: write failed ({exc}); check the bucket, the "
                            "credentials and AWS_ENDPOINT_URL") from exc
        written.append(fs.unstrip_protocol(path))
    return written


def write_schema(out: str, id_column: str = ID) -> str:
    """Write the stream's reviewed schema (what ``ctloop init`` writes) to a path or fsspec URI; return it.

    Raises:
        DataError: When the store cannot be opened or written.
    """
    import fsspec

    from ctloop.errors import DataError
    from ctloop.project import example_schema
    from ctloop.schema import dump_schema

    text = dump_schema(example_schema(id_column))
    if not is_remote(out):
        path = Path(out.removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)
    try:
        fs, path_in_store = fsspec.core.url_to_fs(out)
        fs.pipe_file(path_in_store, text.encode())
    except (ImportError, ValueError, OSError) as exc:
        raise DataError(f"--schema-out {out!r}: write failed ({exc}); check the bucket, the credentials "
                        "and AWS_ENDPOINT_URL") from exc
    return out
