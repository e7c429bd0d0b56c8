"""What central checks of the Redis it stores in: that it keeps writes, and keeps them all.

Theory of operation: a Redis acknowledges a write before it is on disk unless
it runs with ``appendonly yes`` and ``appendfsync always``, and a Redis that
restarts from an older AOF or RDB file, or is flushed, silently loses writes
central acknowledged — central would then hand out their revisions again. So
:class:`~central.storage.redis_store.RedisStorage` runs these checks:

* **Persistence**, with ``--durability local`` (the default) or ``replicated``:
  ``CONFIG GET appendonly`` and ``appendfsync`` on every new connection — at start and
  whenever redis-py connects again after a drop. A weaker setting, or a Redis
  that refuses CONFIG (managed services rename or forbid it), is refused with
  the fix in the message; ``--durability none`` skips the check and says so.
* **Identity and high-water mark**, on every new connection once the store is
  known (:func:`went_back`), and atomically inside every write script
  (:data:`GUARD_LUA`): the store's ``store_id`` must be the one central opened
  and its revision must not be below the highest revision central has
  acknowledged (held in memory; across restarts, central's record does this,
  see :mod:`central.storage.record`). A store that went back refuses the write
  before anything is changed (STORE_WENT_BACK), and from then on central
  refuses every call until it is restarted on good data.

A check that fails on a connection raises :class:`Refused`, a redis-py error
that is not a connection error, so redis-py does not retry it and the store
turns it into its :class:`~edgekv.core.errors.KVError`.
"""

from __future__ import annotations

from typing import Any, cast

import redis.exceptions as redis_errors

from edgekv.core.errors import ErrorKind, KVError, error

# Prepended to every script that writes: it returns {'went-back', what, found} before
# anything is changed when the store went back. Its caller passes the store_id and rev
# keys as the last two KEYS, and the expected id and the revision floor as the last two
# ARGV (so a script's own arguments end at #ARGV - 2).
GUARD_LUA = """
local function went_back()
  local found = redis.call('GET', KEYS[#KEYS - 1])
  if found ~= ARGV[#ARGV - 1] then return {'id', found or ''} end
  local revision = redis.call('GET', KEYS[#KEYS]) or '0'
  if tonumber(revision) < tonumber(ARGV[#ARGV]) then return {'rev', revision} end
  return false
end
local back = went_back()
if back then return {'went-back', back[1], back[2]} end
"""

WANTED = {"appendonly": "yes", "appendfsync": "always"}


class Refused(redis_errors.RedisError):
    """A connection central will not use; carries the error calls get instead, and the
    reason on its own (what central says when it refuses to start)."""

    def __init__(self, kv_error: KVError, reason: str | None = None) -> None:
        super().__init__(kv_error.message)
        self.kv_error = kv_error
        self.reason = reason or kv_error.message


async def persistence_problem(connection: Any, shown_url: str) -> str | None:
    """Why the Redis behind ``connection`` may lose an acknowledged write, or None."""
    found = {}
    try:
        for name in WANTED:
            await connection.send_command("CONFIG", "GET", name)
            found[name] = _config_value(await connection.read_response(), name)
    except redis_errors.ResponseError as exc:
        return (
            f"Redis at {shown_url} does not let central read its persistence settings "
            f"(CONFIG GET: {exc}), as managed Redis services do not, so central cannot check "
            "that it keeps an acknowledged write on disk: make sure it runs with appendonly "
            "yes and appendfsync always, then start central with --durability none"
        )
    if found == WANTED:
        return None
    settings = ", ".join(f"{name} {value}" for name, value in found.items())
    return (
        f"Redis at {shown_url} may lose acknowledged writes ({settings}): run it with "
        "--appendonly yes --appendfsync always (or CONFIG SET both and CONFIG REWRITE), or "
        "start central with --durability none to accept losing them"
    )


def _config_value(reply: Any, name: str) -> str:
    """A CONFIG GET reply's value: a map in RESP3, a [name, value] list in RESP2."""
    if isinstance(reply, dict):
        pairs = list(reply.items())
    else:
        pairs = list(zip(reply[0::2], reply[1::2], strict=True))
    for key, value in pairs:
        if key in (name, name.encode()):
            return value.decode() if isinstance(value, bytes) else str(value)
    return "unknown"


def went_back(store_id: str, floor: int, found_id: str | None, found_revision: int) -> str | None:
    """How the store went back since central acknowledged revision ``floor``, or None."""
    if found_id is None:
        return "it holds no edgekv store any more (it was flushed, or is another Redis)"
    if found_id != store_id:
        return f"it holds another store now ({found_id}, not {store_id})"
    if found_revision < floor:
        return (
            f"its revision is {found_revision} (it restarted from an older AOF or RDB file, "
            "or was restored from an older copy)"
        )
    return None


def went_back_error(shown_url: str, detail: str, revision: int) -> KVError:
    return error(
        ErrorKind.STORE_WENT_BACK,
        store=f"Redis at {shown_url}",
        detail=detail,
        revision=revision,
        remedy="Restore the store's newest data (appendonly yes and appendfsync always keep "
        "it), then restart central; or start central on a new, empty store.",
    )


def script_went_back(answer: Any, store_id: str, floor: int) -> str | None:
    """How the store went back, when a write script's guard refused; else None."""
    if not (isinstance(answer, list) and len(answer) == 3 and answer[0] == b"went-back"):
        return None
    what, found = cast(list[bytes], answer[1:])
    if what == b"id":
        return went_back(store_id, floor, found.decode() or None, floor)
    return went_back(store_id, floor, store_id, int(found))
