"""Redis URLs, checked and shown safely — shared by the central store and the edge cache.

redis-py reads some malformed URLs quietly (``/notadb`` as database 0), and a
URL may carry a password that must never reach a log or an error message.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redacted(url: str) -> str:
    """``url`` without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def check_url(url: str) -> None:
    """Raise ValueError for what redis-py would misread."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("expected redis://HOST:PORT/DB")
    _ = parts.port  # ValueError for a port that is not a number or out of range
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"database {database!r} is not a number")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
