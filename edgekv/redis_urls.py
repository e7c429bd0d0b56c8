"""Redis URLs: checked, their passwords kept out of sight — for central's storage and the
edge's cache alike.

Theory of operation: a password must never reach a line edgekv prints (a ready
line, a log line, an error) nor a command line (``ps`` shows every user's).

* **Printing.** :func:`redact` is the one redaction: it replaces the password
  of every ``redis://`` / ``rediss://`` / ``redis+sentinel://`` URL in a text
  by ``***``. Every printer goes through it: the ready line
  (:func:`edgekv.process.format_ready`), the log formatter
  (:func:`edgekv.cli.common.configure_logging`), the one-line errors of every
  command, and the launcher's report of a node's log.
* **Passing.** A URL may leave its password out (``redis://HOST:PORT/DB``, or
  ``redis://USER@HOST:PORT/DB``); :func:`with_password` then fills in the one
  from ``--redis-password-file FILE`` or the ``EDGEKV_REDIS_PASSWORD``
  environment variable (:func:`configured_password`), neither of which ``ps``
  shows. A password written in the URL itself still works, and wins. The
  launcher moves a topology URL's password into its child's environment
  (:func:`split_password`), so that its command line holds none.

redis-py also reads some malformed URLs quietly (``/notadb`` as database 0):
:func:`check_url` refuses them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from edgekv.core.errors import UsageError

PASSWORD_VARIABLE = "EDGEKV_REDIS_PASSWORD"
REDACTED = "***"
# Central's Redis found through Sentinel: central.storage.redis_connect defines the form.
SENTINEL_SCHEME = "redis+sentinel"
REDIS_SCHEMES = ("redis", "rediss", SENTINEL_SCHEME)
# scheme://[user]:password@ — the password runs to the last "@" before the host(s).
_PASSWORD_IN_URL = re.compile(
    r"(?P<head>(?:rediss?|redis\+sentinel)://[^\s:/@]*:)(?P<password>[^\s/]*)@", re.I
)


def redact(text: str) -> str:
    """``text`` with the password of every Redis URL in it replaced by ``***``."""
    if "://" not in text:  # the common case costs one scan
        return text
    return _PASSWORD_IN_URL.sub(
        lambda match: match["head"] + (REDACTED if match["password"] else "") + "@", text
    )


def redacted(url: str) -> str:
    """``url`` without its password, fit for a message."""
    return redact(url)


def is_redis_url(url: str) -> bool:
    return urlsplit(url).scheme in REDIS_SCHEMES


def split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password, and the password (None when it has none)."""
    parts = urlsplit(url)
    if not is_redis_url(url) or not parts.password:
        return url, None
    user = parts.username or ""
    netloc = (
        f"{user}@{parts.netloc.rpartition('@')[2]}" if user else parts.netloc.rpartition("@")[2]
    )
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` filled in, unless it is not a Redis URL, has a password
    of its own, or ``password`` is None."""
    parts = urlsplit(url)
    if password is None or not is_redis_url(url) or parts.password:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def configured_password(
    password_file: str | None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The password from ``password_file`` (its first line), else ``EDGEKV_REDIS_PASSWORD``,
    else None."""
    if password_file:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"--redis-password-file {password_file}: cannot read it ({exc.strerror or exc})"
            ) from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"--redis-password-file {password_file}: the file is empty")
        return lines[0]
    return environ.get(PASSWORD_VARIABLE) or None


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
