"""Bearer tokens: read from a file (a mounted Secret on a cluster) and compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

from ctloop.errors import ConfigError


def read_bearer_token(path: str | Path, field: str) -> str:
    """The token in ``path`` (stripped); ``field`` names the config key in errors.

    Raises:
        ConfigError: When the file is missing, unreadable or empty.
    """
    p = Path(path)
    try:
        token = p.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{field} {p}: cannot read the token ({exc}); create it, e.g. "
                          f"`openssl rand -hex 32 > {p}`") from exc
    if not token:
        raise ConfigError(f"{field} {p}: the token file is empty")
    return token


def bearer_ok(header: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>`` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and bool(given) and hmac.compare_digest(given.strip().encode(),
                                                                              expected.encode())
