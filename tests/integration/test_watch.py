"""Central's Watch stream: live changes, replay from a revision, lag and compaction."""

from __future__ import annotations

import asyncio

import pytest

import edgekv
from edgekv.client import WatchStream
from edgekv.core.model import Change, ChangeKind
from tests.integration.conftest import Central, StartCentral


async def take(stream: WatchStream, count: int) -> list[Change]:
    taken: list[Change] = []
    async with asyncio.timeout(10):
        async for change in stream:
            taken.append(change)
            if len(taken) == count:
                break
    return taken


async def test_live_changes_arrive_in_order_with_values(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    changes = await kv.watch(include_values=True)
    await kv.put("a", "1", metadata={"m": True})
    await kv.put("b", "2")
    central.clock.advance(1)  # one write per second per key
    await kv.delete("a")
    got = await take(changes, 3)
    assert [(c.kind, c.key) for c in got] == [
        (ChangeKind.PUT, "a"),
        (ChangeKind.PUT, "b"),
        (ChangeKind.DELETE, "a"),
    ]
    assert [c.revision for c in got] == [1, 2, 3]
    assert got[0].version is not None and got[0].version.value == b"1"
    assert got[0].version.metadata_json == '{"m":true}'
    assert got[2].version is None


async def test_keys_only_watch_carries_no_values(kv: edgekv.KVNamespace) -> None:
    changes = await kv.watch()
    await kv.put("a", "1")
    [change] = await take(changes, 1)
    assert change.key == "a" and change.version is None


async def test_resume_from_a_revision_replays_the_log_then_goes_live(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    for key in ("a", "b", "c"):
        await kv.put(key, key)
    changes = await kv.watch(start_revision=2, include_values=True)
    replayed = await take(changes, 2)
    assert [(c.revision, c.key) for c in replayed] == [(2, "b"), (3, "c")]
    await kv.put("d", "d")
    [live] = await take(changes, 1)
    assert (live.revision, live.key) == (4, "d")


async def test_changes_of_other_namespaces_are_not_sent(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    other = central.client.namespace((await central.client.create_namespace("other")).id)
    changes = await kv.watch()
    await other.put("x", "1")
    await kv.put("y", "1")
    [change] = await take(changes, 1)
    assert change.key == "y"


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
async def test_a_watcher_that_falls_behind_is_told_where_to_resume(
    start_central_at: StartCentral,
) -> None:
    central = await start_central_at(watch_backlog=5)
    kv = central.client.namespace((await central.client.create_namespace("lag")).id)
    changes = await kv.watch()
    # One bulk commit publishes 20 changes at once: more than the backlog of 5.
    await kv.bulk_put([{"key": f"k{i:02}", "value": "v"} for i in range(20)])
    with pytest.raises(edgekv.WatchError) as caught:
        await take(changes, 20)
    assert caught.value.kind is edgekv.ErrorKind.WATCH_LAGGING
    assert "start_revision=1" in caught.value.message
    resumed = await take(await kv.watch(start_revision=1), 20)
    assert [c.key for c in resumed] == [f"k{i:02}" for i in range(20)]


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
async def test_a_watcher_is_cut_when_its_backlog_passes_its_bytes_bound(
    start_central_at: StartCentral,
) -> None:
    central = await start_central_at(watch_backlog_bytes=10_000)
    kv = central.client.namespace((await central.client.create_namespace("bytes")).id)
    with_values = await kv.watch(include_values=True)
    keys_only = await kv.watch()
    # 20 changes of 1 KB values in one commit: 20 KB of values, but only ~4 KB of keys.
    await kv.bulk_put([{"key": f"k{i:02}", "value": "v" * 1000} for i in range(20)])
    with pytest.raises(edgekv.WatchError) as caught:
        await take(with_values, 20)
    assert caught.value.message == (
        "Watcher fell more than 10,000 bytes of changes behind; resume with start_revision=1."
    )
    assert len(await take(keys_only, 20)) == 20, "a watcher without values is kept no values"


async def test_deleting_the_namespace_ends_its_watchers(
    central: Central, kv: edgekv.KVNamespace
) -> None:
    changes = await kv.watch()
    await central.client.delete_namespace(kv.id)
    with pytest.raises(edgekv.NotFoundError):
        await take(changes, 1)


async def test_watch_of_unknown_namespace_is_not_found(central: Central) -> None:
    missing = central.client.namespace("ab" * 16)
    with pytest.raises(edgekv.NotFoundError):
        await missing.watch()
