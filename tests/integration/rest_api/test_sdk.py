"""The real ``cloudflare`` Python SDK (pinned, from PyPI) against the API node.

Every call of the SDK's KV surface, the keys that need encoding, values at their
limits, paging, bulk operations at their limits, and the errors it must raise.
"""

from __future__ import annotations

import json

import cloudflare
import pytest

from edgekv.core import limits
from tests.integration.rest_api.conftest import ACCOUNT_A, ACCOUNT_B, Rest

ENCODED_KEYS = ["a/b c?d#e%f", "a:b+c d", "ключ/🔑 ü", "k" * limits.MAX_KEY_BYTES]


async def test_namespaces_create_get_rename_list_delete(rest: Rest) -> None:
    sdk = rest.sdk()
    created = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="sdk-ns")
    assert len(created.id) == 32 and created.title == "sdk-ns"
    assert created.supports_url_encoding is True
    got = await sdk.kv.namespaces.get(created.id, account_id=ACCOUNT_A)
    assert (got.id, got.title) == (created.id, "sdk-ns")
    renamed = await sdk.kv.namespaces.update(created.id, account_id=ACCOUNT_A, title="renamed")
    assert renamed.title == "renamed"
    listed = [ns async for ns in sdk.kv.namespaces.list(account_id=ACCOUNT_A)]
    assert [(ns.id, ns.title) for ns in listed] == [(created.id, "renamed")]
    await sdk.kv.namespaces.delete(created.id, account_id=ACCOUNT_A)
    assert [ns async for ns in sdk.kv.namespaces.list(account_id=ACCOUNT_A)] == []


@pytest.mark.parametrize("key", ENCODED_KEYS)
async def test_keys_that_need_encoding_round_trip(rest: Rest, key: str) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="keys")
    await sdk.kv.namespaces.values.update(
        key, account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v-" + key.encode(), metadata={}
    )
    value = await sdk.kv.namespaces.values.get(key, account_id=ACCOUNT_A, namespace_id=ns.id)
    assert await value.read() == b"v-" + key.encode()
    names = [k.name async for k in sdk.kv.namespaces.keys.list(ns.id, account_id=ACCOUNT_A)]
    assert names == [key]
    # The same key through central's own client: one key, not an encoded twin.
    entry = await rest.admin.namespace(ns.id).get(key)
    assert entry == "v-" + key


async def test_a_key_over_512_bytes_is_refused_and_writes_nothing(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="long")
    with pytest.raises(cloudflare.APIStatusError) as refused:
        await sdk.kv.namespaces.values.update(
            "k" * 513, account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v", metadata={}
        )
    assert refused.value.status_code == 414
    assert refused.value.body["errors"][0]["message"] == (  # type: ignore[index]
        "UTF-8 encoded length of 513 exceeds key length limit of 512."
    )
    assert [k async for k in sdk.kv.namespaces.keys.list(ns.id, account_id=ACCOUNT_A)] == []


async def test_values_metadata_and_expiration(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="values")
    await sdk.kv.namespaces.values.update(
        "k",
        account_id=ACCOUNT_A,
        namespace_id=ns.id,
        value=b"hello",
        metadata={"a": 1, "b": [True, None]},
        expiration_ttl=120,
    )
    raw = await sdk.kv.namespaces.values.with_raw_response.get(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id
    )
    assert raw.headers["expiration"] == str(int(rest.clock.now()) + 120)
    assert await raw.read() == b"hello"
    metadata = await sdk.kv.namespaces.metadata.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert metadata == {"a": 1, "b": [True, None]}
    [key] = [k async for k in sdk.kv.namespaces.keys.list(ns.id, account_id=ACCOUNT_A)]
    assert (key.name, key.expiration, key.metadata) == ("k", int(rest.clock.now()) + 120, metadata)
    # expiration, absolute; a key written again without one never expires.
    at = int(rest.clock.now()) + 3600
    await sdk.kv.namespaces.values.update(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v", metadata={}, expiration=at
    )
    raw = await sdk.kv.namespaces.values.with_raw_response.get(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id
    )
    assert raw.headers["expiration"] == str(at)
    await sdk.kv.namespaces.values.update(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v", metadata={}
    )
    raw = await sdk.kv.namespaces.values.with_raw_response.get(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id
    )
    assert "expiration" not in raw.headers
    rest.clock.advance(3600)  # nothing expires a key that never expires
    value = await sdk.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert await value.read() == b"v"
    await sdk.kv.namespaces.values.delete("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    with pytest.raises(cloudflare.NotFoundError):
        await sdk.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)


async def test_a_ttl_below_60_is_refused_with_workers_kv_words(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="ttl")
    with pytest.raises(cloudflare.BadRequestError) as refused:
        await sdk.kv.namespaces.values.update(
            "k",
            account_id=ACCOUNT_A,
            namespace_id=ns.id,
            value=b"v",
            metadata={},
            expiration_ttl=59,
        )
    assert refused.value.body["errors"][0]["message"] == (  # type: ignore[index]
        "Invalid expiration_ttl of 59. Expiration TTL must be at least 60."
    )
    await sdk.kv.namespaces.values.update(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v", metadata={}, expiration_ttl=60
    )


async def test_values_of_0_bytes_and_25_mib_pass_and_one_byte_more_fails(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="sizes")
    for size in (0, limits.MAX_VALUE_BYTES):
        value = bytes([size % 251]) * size
        await sdk.kv.namespaces.values.update(
            "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=value, metadata={}
        )
        got = await sdk.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
        assert await got.read() == value
    with pytest.raises(cloudflare.APIStatusError) as refused:
        await sdk.kv.namespaces.values.update(
            "k",
            account_id=ACCOUNT_A,
            namespace_id=ns.id,
            value=b"x" * (limits.MAX_VALUE_BYTES + 1),
            metadata={},
        )
    assert refused.value.status_code == 413
    got = await sdk.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert len(await got.read()) == limits.MAX_VALUE_BYTES  # the refused write changed nothing


async def test_2500_keys_are_listed_in_pages_of_1000(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="many")
    body = [{"key": f"key-{i:05d}", "value": str(i)} for i in range(2500)]
    written = await sdk.kv.namespaces.bulk_update(ns.id, account_id=ACCOUNT_A, body=body)
    assert written is not None and written.successful_key_count == 2500
    pages = sdk.kv.namespaces.keys.list(ns.id, account_id=ACCOUNT_A)
    first = await pages
    assert len(first.result) == 1000
    names = [key.name async for key in pages]
    assert names == [item["key"] for item in body]
    small = [
        k.name
        async for k in sdk.kv.namespaces.keys.list(
            ns.id, account_id=ACCOUNT_A, limit=10, prefix="key-0000"
        )
    ]
    assert small == [f"key-{i:05d}" for i in range(10)]


async def test_bulk_of_10000_passes_and_10001_is_refused(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="bulk")
    body = [{"key": f"k{i}", "value": "v"} for i in range(limits.MAX_BULK_ENTRIES)]
    written = await sdk.kv.namespaces.bulk_update(ns.id, account_id=ACCOUNT_A, body=body)
    assert written is not None and written.successful_key_count == limits.MAX_BULK_ENTRIES
    with pytest.raises(cloudflare.BadRequestError):
        await sdk.kv.namespaces.bulk_update(
            ns.id, account_id=ACCOUNT_A, body=[*body, {"key": "one-more", "value": "v"}]
        )
    keys = [f"k{i}" for i in range(limits.MAX_BULK_ENTRIES)]
    deleted = await sdk.kv.namespaces.bulk_delete(ns.id, account_id=ACCOUNT_A, body=keys)
    assert deleted is not None and deleted.successful_key_count == limits.MAX_BULK_ENTRIES
    assert [k async for k in sdk.kv.namespaces.keys.list(ns.id, account_id=ACCOUNT_A)] == []


async def test_bulk_write_with_base64_metadata_and_bulk_get(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="bulk-get")
    at = int(rest.clock.now()) + 600
    await sdk.kv.namespaces.bulk_update(
        ns.id,
        account_id=ACCOUNT_A,
        body=[
            {"key": "text", "value": "plain", "metadata": {"m": 1}, "expiration": at},
            {"key": "b64", "value": "aGVsbG8=", "base64": True},
            {"key": "json", "value": json.dumps({"x": [1, 2]})},
        ],
    )
    plain = await sdk.kv.namespaces.bulk_get(
        ns.id, account_id=ACCOUNT_A, keys=["text", "b64", "nope"]
    )
    assert plain is not None
    assert plain.to_dict()["values"] == {"text": "plain", "b64": "hello", "nope": None}
    rich = await sdk.kv.namespaces.bulk_get(
        ns.id, account_id=ACCOUNT_A, keys=["text", "nope"], with_metadata=True
    )
    assert rich is not None
    assert rich.to_dict()["values"] == {
        "text": {"value": "plain", "metadata": {"m": 1}, "expiration": at},
        "nope": None,
    }
    typed = await sdk.kv.namespaces.bulk_get(
        ns.id, account_id=ACCOUNT_A, keys=["json"], type="json"
    )
    assert typed is not None and typed.to_dict()["values"] == {"json": {"x": [1, 2]}}
    with pytest.raises(cloudflare.BadRequestError):
        await sdk.kv.namespaces.bulk_get(ns.id, account_id=ACCOUNT_A, keys=["text"], type="json")


async def test_1000_namespaces_page_and_another_accounts_are_not_listed(rest: Rest) -> None:
    sdk_a, sdk_b = rest.sdk(), rest.sdk(rest.token_b)
    hidden = await sdk_b.kv.namespaces.create(account_id=ACCOUNT_B, title="of-b")
    for i in range(limits.MAX_NAMESPACES):
        await sdk_a.kv.namespaces.create(account_id=ACCOUNT_A, title=f"ns-{i:04d}")
    with pytest.raises(cloudflare.BadRequestError):  # the 1,001st of one account
        await sdk_a.kv.namespaces.create(account_id=ACCOUNT_A, title="one-more")
    listed = [ns async for ns in sdk_a.kv.namespaces.list(account_id=ACCOUNT_A, per_page=100)]
    # Ordered by id (the default), ten pages of 100, then an empty page that ends it.
    assert [ns.id for ns in listed] == sorted(ns.id for ns in listed)
    assert sorted(ns.title for ns in listed) == [f"ns-{i:04d}" for i in range(1000)]
    assert hidden.id not in {ns.id for ns in listed}
    # B still has room: the limit is per account, and the same title is B's to take.
    await sdk_b.kv.namespaces.create(account_id=ACCOUNT_B, title="ns-0000")


async def test_errors_the_sdk_raises(rest: Rest) -> None:
    sdk = rest.sdk()
    ns = await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="errors")
    with pytest.raises(cloudflare.NotFoundError) as missing:
        await sdk.kv.namespaces.values.get("missing", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert missing.value.body["errors"] == [  # type: ignore[index]
        {"code": 10009, "message": "get: 'key not found'"}
    ]
    unknown = "f" * 32
    with pytest.raises(cloudflare.NotFoundError) as gone:
        await sdk.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=unknown)
    assert gone.value.body["errors"][0]["code"] == 10013  # type: ignore[index]
    with pytest.raises(cloudflare.BadRequestError) as duplicate:
        await sdk.kv.namespaces.create(account_id=ACCOUNT_A, title="errors")
    assert duplicate.value.body["errors"][0]["code"] == 10014  # type: ignore[index]


async def test_tokens_bad_read_only_and_of_another_account(rest: Rest) -> None:
    ns = await rest.sdk().kv.namespaces.create(account_id=ACCOUNT_A, title="guarded")
    await rest.sdk().kv.namespaces.values.update(
        "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=b"v", metadata={}
    )
    with pytest.raises(cloudflare.AuthenticationError):
        await rest.sdk("not-a-token").kv.namespaces.create(account_id=ACCOUNT_A, title="x")
    read_only = rest.sdk(rest.token_a_read_only)
    value = await read_only.kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert await value.read() == b"v"
    with pytest.raises(cloudflare.PermissionDeniedError):
        await read_only.kv.namespaces.values.update(
            "k", account_id=ACCOUNT_A, namespace_id=ns.id, value=b"w", metadata={}
        )
    with pytest.raises(cloudflare.PermissionDeniedError):
        await read_only.kv.namespaces.create(account_id=ACCOUNT_A, title="nope")
    # B's token: A's namespace does not exist for it, whichever account the path names.
    other = rest.sdk(rest.token_b)
    for account in (ACCOUNT_A, ACCOUNT_B):
        with pytest.raises(cloudflare.NotFoundError):
            await other.kv.namespaces.values.get("k", account_id=account, namespace_id=ns.id)
        with pytest.raises(cloudflare.NotFoundError):
            await other.kv.namespaces.delete(ns.id, account_id=account)
    with pytest.raises(cloudflare.PermissionDeniedError):
        await other.kv.namespaces.create(account_id=ACCOUNT_A, title="into-a")
    value = await rest.sdk().kv.namespaces.values.get("k", account_id=ACCOUNT_A, namespace_id=ns.id)
    assert await value.read() == b"v"  # nothing changed


async def test_a_revoked_token_is_refused(rest: Rest) -> None:
    token, info = await rest.admin.create_token(ACCOUNT_A)
    ns = await rest.sdk(token).kv.namespaces.create(account_id=ACCOUNT_A, title="short-lived")
    await rest.admin.revoke_token(info.token_id)
    with pytest.raises(cloudflare.AuthenticationError):
        await rest.sdk(token).kv.namespaces.get(ns.id, account_id=ACCOUNT_A)


async def test_a_token_verifies_and_lists_its_one_account(rest: Rest) -> None:
    token, info = await rest.admin.create_token(ACCOUNT_B)
    verified = await rest.sdk(token).user.tokens.verify()
    assert verified is not None and (verified.id, verified.status) == (info.token_id, "active")
    async with rest.http.get(
        f"{rest.base_url}/memberships?page=1", headers=rest.headers(token)
    ) as response:
        body = await response.json()
    assert [m["account"]["id"] for m in body["result"]] == [ACCOUNT_B]
    async with rest.http.get(
        f"{rest.base_url}/memberships?page=2", headers=rest.headers(token)
    ) as response:
        assert (await response.json())["result"] == []
    with pytest.raises(cloudflare.AuthenticationError):
        await rest.sdk("forged").user.tokens.verify()
