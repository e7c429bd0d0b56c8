"""edgekv: a simulator of Cloudflare Workers KV.

The public surface: :class:`Client` and :class:`KVNamespace` to use a cluster
from Python, the exception tree rooted at :class:`KVError`, and the value types
reads return.

Names are imported on first use (PEP 562), so that ``import edgekv.cli`` does
not load gRPC before the command line has configured it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekv.client import (
        BulkPutEntry,
        BulkResult,
        Client,
        KVNamespace,
        ListedKey,
        ListResult,
        ReadInfo,
        RetryPolicy,
        ValueWithMetadata,
        WatchStream,
        WriteResult,
    )
    from edgekv.config import ConfigError
    from edgekv.core.errors import (
        AlreadyExistsError,
        ErrorKind,
        InvalidRequestError,
        InvalidTypeError,
        KVError,
        NotFoundError,
        RateLimitedError,
        UnavailableError,
        WatchError,
    )
    from edgekv.core.model import Change, ChangeKind, Namespace
    from edgekv.locate import ClusterNotFoundError
    from edgekv.worker_env import Bindings, bindings

_HOMES = {
    "edgekv.client": [
        "BulkPutEntry",
        "BulkResult",
        "Client",
        "KVNamespace",
        "ListResult",
        "ListedKey",
        "ReadInfo",
        "RetryPolicy",
        "ValueWithMetadata",
        "WatchStream",
        "WriteResult",
    ],
    "edgekv.core.errors": [
        "AlreadyExistsError",
        "ErrorKind",
        "InvalidRequestError",
        "InvalidTypeError",
        "KVError",
        "NotFoundError",
        "RateLimitedError",
        "UnavailableError",
        "WatchError",
    ],
    "edgekv.core.model": ["Change", "ChangeKind", "Namespace"],
    "edgekv.worker_env": ["Bindings", "bindings"],
    "edgekv.config": ["ConfigError"],
    "edgekv.locate": ["ClusterNotFoundError"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AlreadyExistsError",
    "Bindings",
    "BulkPutEntry",
    "BulkResult",
    "Change",
    "ChangeKind",
    "Client",
    "ClusterNotFoundError",
    "ConfigError",
    "ErrorKind",
    "InvalidRequestError",
    "InvalidTypeError",
    "KVError",
    "KVNamespace",
    "ListResult",
    "ListedKey",
    "Namespace",
    "NotFoundError",
    "RateLimitedError",
    "ReadInfo",
    "RetryPolicy",
    "UnavailableError",
    "ValueWithMetadata",
    "WatchError",
    "WatchStream",
    "WriteResult",
    "bindings",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekv' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
