"""Central's record of its store: read, written atomically, and checked against a store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.storage.record import (
    RecordKeeper,
    StoreMismatch,
    StoreRecord,
    check_store,
    default_record_path,
)


def test_the_default_record_sits_beside_a_sqlite_database_only() -> None:
    assert default_record_path("sqlite:/data/central.db") == Path("/data/central.db.record.json")
    assert default_record_path("sqlite:central.db") == Path("central.db.record.json")
    assert default_record_path("redis://127.0.0.1:6379/0") is None
    assert default_record_path("memory:") is None


def test_a_record_round_trips_and_a_missing_one_is_none(tmp_path: Path) -> None:
    path = tmp_path / "store.record.json"
    assert StoreRecord.read(path) is None
    StoreRecord(path, "ab" * 16, 42).write()
    assert StoreRecord.read(path) == StoreRecord(path, "ab" * 16, 42)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.record.json"], "no temp left"


def test_an_unreadable_record_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "store.record.json"
    path.write_text("{not json")
    with pytest.raises(StoreMismatch, match=r"cannot read central's store record .* remove it"):
        StoreRecord.read(path)


def test_a_store_must_match_its_record(tmp_path: Path) -> None:
    record = StoreRecord(tmp_path / "r.json", "a" * 32, 10)
    check_store("here", "a" * 32, 10, record)
    check_store("here", "a" * 32, 11, record)
    check_store("here", None, 0, None)  # no record: whatever is there is taken
    with pytest.raises(StoreMismatch, match=r"^here holds no edgekv store, but central served"):
        check_store("here", None, 0, record)
    with pytest.raises(StoreMismatch, match="another store was put in its place"):
        check_store("here", "b" * 32, 10, record)
    with pytest.raises(StoreMismatch, match=r"^here is at revision 9, below revision 10 .*back"):
        check_store("here", "a" * 32, 9, record)


class FakeStore:
    store_id = "c" * 32
    acknowledged_revision = 0


async def test_the_keeper_writes_at_start_and_at_close(tmp_path: Path) -> None:
    path, store = tmp_path / "r.json", FakeStore()
    keeper = RecordKeeper(path, store)
    await keeper.start()
    assert StoreRecord.read(path) == StoreRecord(path, store.store_id, 0)
    store.acknowledged_revision = 7
    await asyncio.sleep(0)
    await keeper.close()
    assert StoreRecord.read(path) == StoreRecord(path, store.store_id, 7)
