"""The store's layout in Redis: its keys, how records are written, and the scripts.

Theory of operation:

* **Layout.** Every Redis key starts with a prefix (``edgekv:`` by default)::

      edgekv:schema_version      string   the layout's version (base.SCHEMA_VERSION)
      edgekv:store_id            string   the store's random id (central.storage.record)
      edgekv:rev                 string   store-wide revision counter (INCR)
      edgekv:namespace_seq       string   creation counter, keeps list order
      edgekv:namespaces          hash     id → "seq|created_at|account_id|title"
      edgekv:titles              hash     "account_id|title" → id (unique per account)
      edgekv:account:{a}:namespaces  set  ids of account a's namespaces (SCARD: its count)
      edgekv:tokens              hash     token_id → "created_at|account_id|R|digest|ids"
      edgekv:changes             zset     score revision, member "rev|namespace_id"
      edgekv:ns:{id}:names       zset     key bytes, all with score 0
      edgekv:ns:{id}:info        hash     key bytes → "rev|expiration|commit_time|M"
      edgekv:ns:{id}:values      hash     key bytes → value bytes
      edgekv:ns:{id}:changes     zset     score revision, member "rev|kind|commit_time|key"
      edgekv:ns:{id}:written     hash     key bytes → commit time of its delete (rate rule)
      edgekv:feed                stream   what changed, in commit order (field e, below)

  Key names are stored as their UTF-8 bytes. Members of a zset that share a
  score sort by ``memcmp``, so ``ZRANGEBYLEX`` walks keys in UTF-8 byte order
  (the order Workers KV lists in) and a prefix is a byte range — ``%``, ``_``
  and ``\\`` are ordinary bytes. ``M`` is ``-`` for no metadata or ``+`` and
  the metadata JSON; the free-form field is always last, so ``|`` inside it
  needs no escaping. The ``info`` hash is apart from ``values`` so a scan
  reads expirations without touching 25 MiB values.
* **Accounts.** Account ids are 32 hex characters, so in a namespace record
  and a ``titles`` field only the title is free-form, and it comes last. An
  account's namespaces are counted against the limit with a set per account
  rather than by walking ``namespaces`` in the create script: SCARD is O(1)
  where the walk would parse every record of every account on every create,
  and SADD/SREM of an id are idempotent, so the set cannot drift from
  ``namespaces`` the way a counter could. A token's ``R`` is ``r`` for
  read-only or ``w``, and ``ids`` — the namespaces it may reach, empty for
  all of its account's — is a JSON array, last.
* **Schema version.** ``schema_version`` is missing in a store from before
  accounts (version 1). :data:`MIGRATE_LUA` runs at every open: a new store
  gets the current version; a version-1 store is migrated in that ONE
  script (atomic: no client sees half of it, and it checks every record
  before it changes any, since Redis does not undo a script that fails
  halfway); a current store is left alone; a newer one is left alone and
  refused by the caller.
* **The feed** is how several central processes over one Redis stay one
  store (:mod:`central.feed`). Every script that changes something a central
  keeps in memory or streams to watchers adds one event, in the same atomic
  call, so the stream's order is the commit order: ``c|ns|first|last`` (a
  commit in ``ns`` made revisions ``first`` to ``last``; the changes
  themselves are read from the change log), ``n+|ns|account`` and ``n-|ns``
  (a namespace created, deleted), ``t+|token_id`` and ``t-|token_id``. It is
  trimmed to about ``feed_length`` entries (``XADD MAXLEN ~``).
* **The one-write-per-second rule** is judged inside the commit script, so
  that two centrals cannot both take a key's one write of a second: a key's
  last write is its value's commit time, or, once deleted, the time kept in
  ``written`` (removed when a value replaces it; a store whose rule is off
  keeps none).
* **Why Lua.** Every operation that reads or changes more than one Redis key
  is ONE script call (EVALSHA). Redis runs a script alone, so a commit's
  namespace check, revisions, writes and change-log rows are atomic with
  respect to every other client, and a read sees one consistent state.
  Trimming the change log touches other namespaces' logs, and deleting (or
  replacing) a namespace, or migrating, touches an account's set found in a
  record, so the scripts name keys they were not given: this back-end is for
  one Redis, not a Cluster.
* **Why no EXPIRE.** Expiration is judged by the simulator's clock, which may
  run faster than real time, so it is data (``expiration`` in ``info``) and a
  scan filters with the ``now`` it is given. Reads return expired versions;
  the service filters them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edgekv.core.accounts import Token
from edgekv.core.listing import ListQuery, prefix_upper_bound
from edgekv.core.model import Change, ChangeKind, FeedEvent, Namespace, Put, Version

# Lua: numbers are doubles, so revisions are formatted with %d (tostring
# would switch to exponent notation past 1e14).

COMMIT_LUA = """
-- KEYS: namespaces, rev, names, info, values, ns_changes, changes, written, feed,
--       (guard: store_id, rev)
-- ARGV: namespace_id, now, change_log_rows, prefix, write_interval, feed_length,
--       then per write op ("p"/"d"), key, info_tail ("expiration|commit_time|M"),
--       value, then (guard) store_id, revision floor
-- Answer: {missing, final revision, then per write: revision, outcome}; outcome 1
-- changed, 0 changed nothing (a delete of a missing key), 2 refused by the rate rule.
local namespace_id, now = ARGV[1], ARGV[2]
if redis.call('HEXISTS', KEYS[1], namespace_id) == 0 then
  return {1, 0}
end
local interval = tonumber(ARGV[5])
local function log_change(rev_text, kind, key)
  redis.call('ZADD', KEYS[6], rev_text, rev_text .. '|' .. kind .. '|' .. now .. '|' .. key)
  redis.call('ZADD', KEYS[7], rev_text, rev_text .. '|' .. namespace_id)
end
-- When the key was last written: its value's commit time, or its delete's (kept in
-- 'written' while no value replaces it). Judged with the callers' clock, like expiry.
local function too_soon(key)
  if interval <= 0 then return false end
  local last
  local info = redis.call('HGET', KEYS[4], key)
  if info then
    last = string.match(info, '^%d+|[^|]*|([^|]*)|')
  else
    last = redis.call('HGET', KEYS[8], key)
  end
  if last == nil or last == false then return false end
  -- A clock behind the last write (another host's, or a new session's re-anchored scaled
  -- clock) must not refuse the key until it catches up.
  local since = tonumber(now) - tonumber(last)
  return since >= 0 and since < interval
end
local revision = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = 0
local answer = {0, 0}
for i = 7, #ARGV - 2, 4 do
  local op, key = ARGV[i], ARGV[i + 1]
  local outcome = 1
  if op == 'p' then
    if too_soon(key) then
      outcome = 2
    else
      revision = redis.call('INCR', KEYS[2])
      local rev_text = string.format('%d', revision)
      redis.call('ZADD', KEYS[3], 0, key)
      redis.call('HSET', KEYS[4], key, rev_text .. '|' .. ARGV[i + 2])
      redis.call('HSET', KEYS[5], key, ARGV[i + 3])
      redis.call('HDEL', KEYS[8], key)
      log_change(rev_text, 'p', key)
    end
  elseif redis.call('ZSCORE', KEYS[3], key) == false then
    outcome = 0
  elseif too_soon(key) then
    outcome = 2
  else
    redis.call('ZREM', KEYS[3], key)
    redis.call('HDEL', KEYS[4], key)
    redis.call('HDEL', KEYS[5], key)
    if interval > 0 then redis.call('HSET', KEYS[8], key, now) end
    revision = redis.call('INCR', KEYS[2])
    log_change(string.format('%d', revision), 'd', key)
  end
  if outcome == 1 and first == 0 then first = revision end
  answer[#answer + 1] = outcome == 2 and 0 or revision
  answer[#answer + 1] = outcome
end
answer[2] = revision
if first > 0 then
  local event = 'c|' .. namespace_id .. '|' .. string.format('%d|%d', first, revision)
  redis.call('XADD', KEYS[9], 'MAXLEN', '~', ARGV[6], '*', 'e', event)
end
local excess = redis.call('ZCARD', KEYS[7]) - tonumber(ARGV[3])
if excess > 0 then
  local prefix = ARGV[4]
  for _, member in ipairs(redis.call('ZRANGE', KEYS[7], 0, excess - 1)) do
    local rev_text, owner = string.match(member, '^(%d+)|(.*)$')
    local owner_log = prefix .. 'ns:' .. owner .. ':changes'
    redis.call('ZREMRANGEBYSCORE', owner_log, rev_text, rev_text)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[7], 0, excess - 1)
end
return answer
"""

SCAN_LUA = """
-- KEYS: names, info
-- ARGV: lex_min, lex_max, limit, max_keys_looked_at, now
-- Answer: {status, last_looked_at, name, info, name, info, ...}
-- status 0: range exhausted; 1: stopped by the work bound; 2: found limit + 1.
local lex_min, lex_max = ARGV[1], ARGV[2]
local wanted = tonumber(ARGV[3]) + 1
local budget = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local answer = {0, ''}
local found, looked = 0, 0
while looked < budget do
  local batch = math.min(budget - looked, wanted - found + 32, 1024)
  local names = redis.call('ZRANGEBYLEX', KEYS[1], lex_min, lex_max, 'LIMIT', 0, batch)
  if #names == 0 then return answer end
  local infos = redis.call('HMGET', KEYS[2], unpack(names))
  for i, name in ipairs(names) do
    looked = looked + 1
    answer[2] = name
    local info = infos[i]
    if info then
      local expiration = string.match(info, '^%d+|(%-?%d*)|')
      if expiration == '' or now < tonumber(expiration) then
        answer[#answer + 1] = name
        answer[#answer + 1] = info
        found = found + 1
        if found >= wanted then
          answer[1] = 2
          return answer
        end
      end
    end
  end
  if #names < batch then return answer end
  lex_min = '(' .. answer[2]
end
if #redis.call('ZRANGEBYLEX', KEYS[1], lex_min, lex_max, 'LIMIT', 0, 1) > 0 then
  answer[1] = 1
end
return answer
"""

GET_LUA = """
-- KEYS: info, values; ARGV: key names. Answer: {infos, values}.
return {redis.call('HMGET', KEYS[1], unpack(ARGV)), redis.call('HMGET', KEYS[2], unpack(ARGV))}
"""

CHANGES_LUA = """
-- KEYS: ns_changes, info, values; ARGV: after_revision, limit
-- Answer: {entry, info_or_empty, value_or_empty, ...}; info and value only
-- for a put that is still the key's current version.
local entries = redis.call(
  'ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
local answer = {}
for _, entry in ipairs(entries) do
  local rev_text, kind, key = string.match(entry, '^(%d+)|(%a)|[^|]*|(.*)$')
  local info, value = '', ''
  if kind == 'p' then
    local current = redis.call('HGET', KEYS[2], key)
    if current and string.match(current, '^(%d+)|') == rev_text then
      info = current
      value = redis.call('HGET', KEYS[3], key)
    end
  end
  answer[#answer + 1] = entry
  answer[#answer + 1] = info
  answer[#answer + 1] = value
end
return answer
"""

# Prepended to the scripts that change the directory (namespaces, tokens): ``feed`` adds
# an event to the feed, the key before the guard's two, trimmed to the length that is
# the last argument before the guard's two.
FEED_LUA = """
local function feed(event)
  redis.call('XADD', KEYS[#KEYS - 2], 'MAXLEN', '~', ARGV[#ARGV - 2], '*', 'e', event)
end
"""

CREATE_NAMESPACE_LUA = """
-- KEYS: namespaces, titles, namespace_seq, account_namespaces, names, info, values,
--       written, feed, (guard: store_id, rev)
-- ARGV: id, account_id, title, created_at, max_namespaces, prefix, feed_length,
--       (guard: store_id, floor).
-- Answer: 'ok', 'title' or 'limit'.
local id, account, title = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[2], account .. '|' .. title) == 1 then return 'title' end
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[5]) then return 'limit' end
local seq_text
local old = redis.call('HGET', KEYS[1], id)
if old then
  -- The same id again replaces the namespace and empties it, as MemoryStorage does.
  local old_seq, old_account, old_title = string.match(old, '^(%d+)|[^|]*|([^|]*)|(.*)$')
  seq_text = old_seq
  redis.call('HDEL', KEYS[2], old_account .. '|' .. old_title)
  redis.call('SREM', ARGV[6] .. 'account:' .. old_account .. ':namespaces', id)
  redis.call('UNLINK', KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  feed('n-|' .. id)
else
  seq_text = string.format('%d', redis.call('INCR', KEYS[3]))
end
redis.call('HSET', KEYS[1], id, seq_text .. '|' .. ARGV[4] .. '|' .. account .. '|' .. title)
redis.call('HSET', KEYS[2], account .. '|' .. title, id)
redis.call('SADD', KEYS[4], id)
feed('n+|' .. id .. '|' .. account)
return 'ok'
"""

RENAME_NAMESPACE_LUA = """
-- KEYS: namespaces, titles, (guard: store_id, rev); ARGV: id, title, (guard: store_id, floor)
-- Answer: {'ok', record}, {'missing'} or {'title'}.
local id, title = ARGV[1], ARGV[2]
local record = redis.call('HGET', KEYS[1], id)
if not record then return {'missing'} end
local seq_text, created_at, account, old_title = string.match(
  record, '^(%d+)|([^|]*)|([^|]*)|(.*)$')
local owner = redis.call('HGET', KEYS[2], account .. '|' .. title)
if owner and owner ~= id then return {'title'} end
redis.call('HDEL', KEYS[2], account .. '|' .. old_title)
redis.call('HSET', KEYS[2], account .. '|' .. title, id)
local renamed = seq_text .. '|' .. created_at .. '|' .. account .. '|' .. title
redis.call('HSET', KEYS[1], id, renamed)
return {'ok', renamed}
"""

DELETE_NAMESPACE_LUA = """
-- KEYS: namespaces, titles, names, info, values, written, feed, (guard: store_id, rev)
-- ARGV: id, prefix, feed_length, (guard: store_id, floor). Answer: 1 or 0.
-- The namespace's change log stays (as in MemoryStorage) until trimmed.
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
local account, title = string.match(record, '^%d+|[^|]*|([^|]*)|(.*)$')
local title_field = account .. '|' .. title
if redis.call('HGET', KEYS[2], title_field) == ARGV[1] then
  redis.call('HDEL', KEYS[2], title_field)
end
redis.call('SREM', ARGV[2] .. 'account:' .. account .. ':namespaces', ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('UNLINK', KEYS[3], KEYS[4], KEYS[5], KEYS[6])
feed('n-|' .. ARGV[1])
return 1
"""

CREATE_TOKEN_LUA = """
-- KEYS: tokens, feed, (guard: store_id, rev)
-- ARGV: token_id, record, feed_length, (guard: store_id, floor)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
feed('t+|' .. ARGV[1])
return 'ok'
"""

REVOKE_TOKEN_LUA = """
-- KEYS: tokens, feed, (guard: store_id, rev)
-- ARGV: token_id, feed_length, (guard: store_id, floor)
local revoked = redis.call('HDEL', KEYS[1], ARGV[1])
if revoked == 1 then feed('t-|' .. ARGV[1]) end
return revoked
"""

MIGRATE_LUA = """
-- KEYS: schema_version, namespaces, titles
-- ARGV: this code's schema version, the default account id, prefix
-- Answer: {version found, id of a record it cannot read or ''}. A store with no
-- version is 1 when it has namespaces, else new; a newer one is left alone.
local current, account, prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local recorded = redis.call('GET', KEYS[1])
local found = tonumber(recorded or '0')
if not recorded then
  found = redis.call('EXISTS', KEYS[2]) == 1 and 1 or current
end
if found > current then return {found, ''} end
-- Current, and recorded so: a second open writes nothing.
if found == current and recorded then return {found, ''} end
if found == 1 then
  -- Version 1 records are "seq|created_at|title". All are read before any is
  -- rewritten: a script that fails halfway keeps what it already changed.
  local records = redis.call('HGETALL', KEYS[2])
  local parsed = {}
  for i = 1, #records, 2 do
    local seq_text, created_at, title = string.match(records[i + 1], '^(%d+)|([^|]*)|(.*)$')
    if not seq_text then return {found, records[i]} end
    parsed[#parsed + 1] = {records[i], seq_text .. '|' .. created_at .. '|' .. account, title}
  end
  local members = prefix .. 'account:' .. account .. ':namespaces'
  redis.call('DEL', KEYS[3])
  for _, row in ipairs(parsed) do
    local id, head, title = row[1], row[2], row[3]
    redis.call('HSET', KEYS[2], id, head .. '|' .. title)
    redis.call('HSET', KEYS[3], account .. '|' .. title, id)
    redis.call('SADD', members, id)
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return {found, ''}
"""


# -- encoding -----------------------------------------------------------------


def text(raw: bytes) -> str:
    return raw.decode("utf-8")


def time_text(seconds: float) -> str:
    """A float as text that parses back to the same float (in Python and Lua)."""
    return repr(float(seconds))


def info_tail(put: Put, now: float) -> bytes:
    """The part of an ``info`` record the commit script puts after the revision."""
    expiration = "" if put.expiration is None else str(put.expiration)
    metadata = "-" if put.metadata_json is None else "+" + put.metadata_json
    return f"{expiration}|{time_text(now)}|{metadata}".encode()


@dataclass(frozen=True, slots=True)
class Info:
    """An ``info`` record: a key's current version without its value."""

    revision: int
    expiration: int | None
    commit_time: float
    metadata_json: str | None

    @classmethod
    def parse(cls, raw: bytes) -> Info:
        revision, expiration, commit_time, metadata = raw.split(b"|", 3)
        return cls(
            revision=int(revision),
            expiration=int(expiration) if expiration else None,
            commit_time=float(commit_time),
            metadata_json=text(metadata[1:]) if metadata.startswith(b"+") else None,
        )

    def version(self, key: str, value: bytes) -> Version:
        return Version(
            key, value, self.metadata_json, self.expiration, self.revision, self.commit_time
        )


def parse_namespace(namespace_id: str, record: bytes) -> tuple[int, Namespace]:
    """Parse a ``namespaces`` record into (creation sequence, namespace)."""
    seq, created_at, account_id, title = record.split(b"|", 3)
    return int(seq), Namespace(namespace_id, text(title), float(created_at), text(account_id))


def token_record(token: Token) -> str:
    """A token's record in the ``tokens`` hash."""
    flag = "r" if token.read_only else "w"
    ids = json.dumps(list(token.namespace_ids))
    return f"{time_text(token.created_at)}|{token.account_id}|{flag}|{token.digest}|{ids}"


def parse_token(token_id: str, record: bytes) -> Token:
    created_at, account_id, flag, digest, ids = record.split(b"|", 4)
    return Token(
        token_id=token_id,
        digest=text(digest),
        account_id=text(account_id),
        read_only=flag == b"r",
        namespace_ids=tuple(json.loads(ids)),
        created_at=float(created_at),
    )


def parse_feed_event(raw: bytes) -> FeedEvent:
    """A feed entry's ``e`` field (see the layout above); one that cannot be read is of
    kind ``?`` (its reader cannot know what it missed, and starts again from the store)."""
    try:
        kind, subject, *rest = text(raw).split("|")
        if kind == "c":
            first, last = int(rest[0]), int(rest[1])
            return FeedEvent(kind, subject, first_revision=first, last_revision=last)
        if kind == "n+":
            return FeedEvent(kind, subject, account_id=rest[0])
        if kind in ("n-", "t+", "t-"):
            return FeedEvent(kind, subject)
    except (ValueError, IndexError):
        pass
    return FeedEvent("?", raw.decode("utf-8", "replace"))


def parse_change(namespace_id: str, entry: bytes, info: bytes, value: bytes) -> Change:
    revision, kind, commit_time, key_bytes = entry.split(b"|", 3)
    key = text(key_bytes)
    version = Info.parse(info).version(key, value) if info else None
    return Change(
        int(revision),
        ChangeKind.PUT if kind == b"p" else ChangeKind.DELETE,
        namespace_id,
        key,
        float(commit_time),
        version,
    )


def lex_range(query: ListQuery) -> tuple[bytes, bytes]:
    """The ZRANGEBYLEX bounds of keys with the prefix that sort after start_after."""
    prefix = query.prefix.encode()
    if query.start_after is None or query.start_after < query.prefix:
        lower = b"[" + prefix
    else:
        lower = b"(" + query.start_after.encode()
    upper_bound = prefix_upper_bound(prefix)
    upper = b"+" if upper_bound is None else b"(" + upper_bound
    return lower, upper
