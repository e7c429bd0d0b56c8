"""edgekv: a simulator of Cloudflare Workers KV.

The public surface: :class:`Client` and :class:`KVNamespace` to use a cluster
from Python, the exception tree rooted at :class:`KVError`, and the value types
reads return.
"""

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
    WriteResult,
)
from edgekv.core.errors import (
    AlreadyExistsError,
    ErrorKind,
    InvalidRequestError,
    KVError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    WatchError,
)
from edgekv.core.model import Change, ChangeKind, Namespace

__all__ = [
    "AlreadyExistsError",
    "BulkPutEntry",
    "BulkResult",
    "Change",
    "ChangeKind",
    "Client",
    "ErrorKind",
    "InvalidRequestError",
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
    "WriteResult",
]
