"""The limits of Workers KV, as numbers with units in their names.

Values and their sources: docs/design.md, "Limits and messages"; each is used by
exactly one validator in :mod:`edgekv.core.validation` or the cache policy.
"""

from typing import Final

MAX_KEY_BYTES: Final = 512
RESERVED_KEYS: Final = frozenset({".", ".."})
MAX_VALUE_BYTES: Final = 25 * 1024 * 1024  # 26,214,400
MAX_METADATA_BYTES: Final = 1024
MIN_EXPIRATION_TTL_S: Final = 60
MIN_EXPIRATION_AHEAD_S: Final = 60
# The latest expiration a key may have, whether given or resolved from a TTL: the
# last second of year 9999, 9999-12-31 23:59:59 UTC. Workers KV documents no upper
# bound; edgekv needs one, because an expiration must
#   * fit the wire's int64 and the storages' integers (SQLite's INTEGER, the text
#     Redis keeps), or the write poisons its group commit or the reads after it;
#   * compare exactly with a float ``now`` (a double holds every integer up to 2**53);
#   * be a date people and tools can show: ISO 8601's four-digit years, Python's
#     datetime and SQL's date types all end with 9999.
# 2**53 - 1 would meet the first two but is a year near 285 million that datetime
# cannot even represent; 9999's last second meets all three and leaves 7,900 years.
MAX_EXPIRATION_S: Final = 253_402_300_799
MAX_EXPIRATION_UTC: Final = "9999-12-31 23:59:59 UTC"

# The numbers a Worker's binding takes (expiration, expirationTtl, cacheTtl, limit) are
# int32s; the gRPC API, like the REST API, takes wider ones (MAX_EXPIRATION_S above).
BINDING_INT_MIN: Final = -(2**31)
BINDING_INT_MAX: Final = 2**31 - 1

DEFAULT_CACHE_TTL_S: Final = 60
MIN_CACHE_TTL_S: Final = 30

MAX_LIST_LIMIT: Final = 1000
MAX_GET_MANY_KEYS: Final = 100
MAX_BULK_ENTRIES: Final = 10_000
MAX_BULK_BYTES: Final = 100 * 1024 * 1024

WRITES_PER_KEY_INTERVAL_S: Final = 1.0  # one write per key per second

MAX_NAMESPACES: Final = 1000
MAX_NAMESPACE_TITLE_CHARS: Final = 512
NAMESPACE_ID_HEX_CHARS: Final = 32
DEFAULT_NAMESPACES_PER_PAGE: Final = 20
MAX_NAMESPACES_PER_PAGE: Final = 1000

# gRPC messages must carry a 25 MiB value plus its envelope, and a bulk write
# of up to 100 MiB; this bounds both directions on servers and clients.
MAX_MESSAGE_BYTES: Final = MAX_BULK_BYTES + 16 * 1024 * 1024
# The largest request an edge receives: a Put, whose 25 MiB value comes with a key, metadata
# and a few small fields (a few KiB in all; 64 KiB leaves room). Bulk writes are central's.
MAX_EDGE_REQUEST_BYTES: Final = MAX_VALUE_BYTES + 64 * 1024
