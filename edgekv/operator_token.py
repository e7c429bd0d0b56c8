"""Central's operator token: made at first start, kept in a file only its owner reads.

Theory of operation: the operator — who runs central — makes and revokes API
tokens (``edgekv token``) and, when central runs with ``--auth``, is the one
caller allowed everything without an account's token. Central proves nothing
about who runs a command other than by a secret: at its first start it writes
a random token to a file of mode 0600 (:mod:`edgekv.private_files`), and at
every start it reads it back and accepts it as the operator
(:attr:`~central.service.CentralSettings.operator_digest`). Whoever can read
the file is the operator; ``edgekv token`` reads it when given the file, or
finds it through the state file of ``edgekv up``.

For ``sqlite:PATH`` the file is ``PATH.operator-token`` unless given; other
stores have no place of their own and take ``--operator-token-file``.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from edgekv.core.errors import UsageError
from edgekv.private_files import write_private_text


def default_operator_token_path(storage_url: str) -> Path | None:
    """Beside a SQLite file; None for stores that have no file."""
    scheme, _, rest = storage_url.partition(":")
    if scheme != "sqlite" or not rest:
        return None
    return Path(rest.removeprefix("//") + ".operator-token")


def operator_token(path: Path) -> str:
    """The operator token in ``path``, made (and written, 0600) if the file does not exist."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(30)
        write_private_text(path, token + "\n")
        return token
    except OSError as exc:
        raise UsageError(f"cannot read the operator token {path}: {exc.strerror or exc}") from None
    if not token:
        raise UsageError(f"the operator token file {path} is empty; remove it to make a new one")
    return token


def read_operator_token(path: Path) -> str:
    """An existing operator token (for commands that authenticate with it)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"cannot read the operator token {path}: {exc.strerror or exc}") from None
    if not token:
        raise UsageError(f"the operator token file {path} is empty")
    return token
