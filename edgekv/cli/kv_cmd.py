"""``edgekv kv``: wrangler's ``kv namespace`` / ``kv key`` / ``kv bulk`` commands.

Theory of operation: each subcommand resolves a namespace the way wrangler
does (``--namespace-id`` as given; ``--binding`` looked up in the chosen
environment of the wrangler config, ``--preview`` choosing ``preview_id``),
finds the cluster (:mod:`edgekv.locate`), makes one client call or a few, and
prints what wrangler prints. Key and bulk commands talk to the central store
like wrangler's ``--remote`` talks to the REST API; ``--region`` reads through
that region's edge instead, as a Worker there would.

A write refused by the one-write-per-second rule (429) — a ``bulk delete``
right after the ``bulk put`` of the same keys, say — is written again after a
jittered wait of at least a second, a few times at most, as the official SDKs
do (``edgekv.Client(retry_rate_limited=True)``); each wait is told on stderr.
``--no-retry`` lets the first 429 fail the command.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import sys
import tomllib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgekv.cli.common import Subcommands, add_client_tls_flag
from edgekv.client import BulkPutEntry, BulkResult, Client, KVNamespace
from edgekv.config import (
    ConfigError,
    WranglerConfig,
    find_config,
    load_config,
    resolve_id,
)
from edgekv.core import limits
from edgekv.core.errors import ErrorKind, UsageError, error
from edgekv.core.validation import validate_bulk_shape
from edgekv.locate import locate_central, locate_edge

BULK_CHUNK_ENTRIES = 1000  # wrangler's BATCH_KEY_MAX
T = TypeVar("T")
BULK_ENTRY_FIELDS = {"key", "value", "expiration", "expiration_ttl", "metadata", "base64"}


# -- shared flags and lookups -----------------------------------------------------------


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="PATH", help="wrangler.toml / .json / .jsonc")
    parser.add_argument("-e", "--env", metavar="NAME", help="the environment in the config")
    parser.add_argument(
        "--central",
        metavar="HOST:PORT",
        help="the central store (replicas: HOST:PORT,HOST:PORT,... or dns:///NAME:PORT)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="an API token (`edgekv token create`) the calls carry (default: $EDGEKV_TOKEN)",
    )
    add_client_tls_flag(parser, "central and the edges")


def _add_namespace_flags(parser: argparse.ArgumentParser) -> None:
    _add_config_flags(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--binding", metavar="NAME", help="a binding in kv_namespaces")
    which.add_argument("--namespace-id", metavar="ID", help="the namespace's id")
    parser.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the binding's preview_id; --preview false (or --no-preview) uses its id",
    )


def _add_retry_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-retry",
        dest="retry_rate_limited",
        action="store_false",
        help="fail on a 429 (one write per second per key) instead of writing again "
        "after a second or more",
    )


def _show_rate_limit_waits() -> None:
    """Tell on stderr each wait of a write refused with 429 (the client logs it)."""
    logger = logging.getLogger("edgekv.client")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("edgekv: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _add_region_flags(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--region`` (and ``--edge`` to name its edge): go through an edge, not to central."""
    parser.add_argument("--region", metavar="R", help=f"{verb} through this region's edge")
    parser.add_argument("--edge", metavar="HOST:PORT", help="the edge for --region")


def _config(args: argparse.Namespace) -> WranglerConfig:
    path = Path(args.config) if args.config else find_config()
    if path is None:
        raise ConfigError("no wrangler.toml, wrangler.json or wrangler.jsonc here or above")
    return load_config(path)


def _namespace_id(args: argparse.Namespace) -> str:
    if args.namespace_id:
        return str(args.namespace_id)
    if not args.binding:
        raise UsageError("either --binding or --namespace-id must be given")
    config = _config(args)
    return resolve_id(config.binding(args.binding, args.env), args.preview, config.path)


def _central(args: argparse.Namespace) -> Client:
    return Client(central=locate_central(args.central), token=_token(args), tls_ca=args.tls_ca)


def _token(args: argparse.Namespace) -> str | None:
    """--token, else None: the client reads EDGEKV_TOKEN itself."""
    token: str | None = getattr(args, "token", None)
    return token


@dataclass
class _Target:
    client: Client
    kv: KVNamespace
    namespace_id: str


def _target(args: argparse.Namespace, region: str | None = None) -> _Target:
    namespace_id = _namespace_id(args)
    edge = getattr(args, "edge", None)
    # Only the writing commands have --no-retry; the reading ones never see a 429.
    retry_rate_limited: bool = getattr(args, "retry_rate_limited", False)
    if retry_rate_limited:
        _show_rate_limit_waits()
    if region is not None or edge is not None:
        client = Client(
            edge=locate_edge(region or "", edge),
            retry_rate_limited=retry_rate_limited,
            token=_token(args),
            tls_ca=args.tls_ca,
        )
    else:
        client = Client(
            central=locate_central(args.central),
            retry_rate_limited=retry_rate_limited,
            token=_token(args),
            tls_ca=args.tls_ca,
        )
    # wrangler's commands call the REST API, not a binding: its bare messages, its ranges.
    return _Target(client, client.namespace(namespace_id, as_binding=False), namespace_id)


def _confirm(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- kv namespace ------------------------------------------------------------------------


def _title(config: WranglerConfig | None, binding: str, env: str | None, preview: bool) -> str:
    worker = (config.name if config is not None else None) or "worker"
    return f"{worker}{f'-{env}' if env else ''}-{binding}{'_preview' if preview else ''}"


def _snippet(binding: str, namespace_id: str, env: str | None, preview: bool) -> str:
    table = f"env.{env}.kv_namespaces" if env else "kv_namespaces"
    field = "preview_id" if preview else "id"
    return f'[[{table}]]\nbinding = "{binding}"\n{field} = "{namespace_id}"\n'


async def namespace_create(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else find_config()
    config = load_config(path) if path is not None else None
    if args.update_config:
        # Everything that could stop the edit is checked before the namespace exists,
        # so a refused edit never leaves a namespace nobody knows the id of.
        _check_config_edit(config, args.namespace, args.env, args.preview)
    title = _title(config, args.namespace, args.env, args.preview)
    print(f'🌀 Creating namespace with title "{title}"')
    async with _central(args) as client:
        namespace = await client.create_namespace(title)
    print("✨ Success!")
    snippet = _snippet(args.namespace, namespace.id, args.env, args.preview)
    if args.update_config and config is not None:
        _edit_config(config, args.namespace, namespace.id, args.env, args.preview, snippet)
        print(f"Added the binding {args.namespace!r} to {config.path}.")
        return 0
    where = f" under [env.{args.env}]" if args.env else ""
    print(f"Add the following to your configuration file in your kv_namespaces array{where}:")
    print(snippet, end="")
    return 0


def _check_config_edit(
    config: WranglerConfig | None, binding: str, env: str | None, preview: bool
) -> None:
    if config is None:
        raise ConfigError("--update-config needs a wrangler config; none was found")
    if config.path.suffix == ".jsonc":
        raise ConfigError(f"{config.path}: --update-config does not edit .jsonc files (comments)")
    if any(existing.binding == binding for existing in config.kv_namespaces.get(env, [])):
        where = f"[env.{env}]" if env else "the top level"
        raise ConfigError(
            f'{config.path}: binding "{binding}" exists already in {where}; '
            "run without --update-config and add the printed id by hand"
        )
    if config.path.suffix == ".toml":
        probe = _snippet(binding, "0" * 32, env, preview)
        _toml_with(config.path, probe)


def _toml_with(path: Path, snippet: str) -> str:
    """The TOML text with ``snippet`` appended, refused unless it still parses."""
    text = path.read_text(encoding="utf-8")
    separator = "" if text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    combined = text + separator + snippet
    try:
        tomllib.loads(combined)
    except tomllib.TOMLDecodeError:
        raise ConfigError(
            f"{path}: cannot append a [[kv_namespaces]] table here (is kv_namespaces an "
            "inline array?); run without --update-config and add the id by hand"
        ) from None
    return combined


def _edit_config(
    config: WranglerConfig,
    binding: str,
    namespace_id: str,
    env: str | None,
    preview: bool,
    snippet: str,
) -> None:
    if config.path.suffix == ".toml":
        config.path.write_text(_toml_with(config.path, snippet), encoding="utf-8")
        return
    raw = json.loads(config.path.read_text(encoding="utf-8"))
    table = raw.setdefault("env", {}).setdefault(env, {}) if env else raw
    entry = {"binding": binding, ("preview_id" if preview else "id"): namespace_id}
    table.setdefault("kv_namespaces", []).append(entry)
    config.path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")


async def namespace_list(args: argparse.Namespace) -> int:
    async with _central(args) as client:
        namespaces = await client.list_namespaces(order="title")
    _print_json(
        [{"id": ns.id, "title": ns.title, "supports_url_encoding": True} for ns in namespaces]
    )
    return 0


async def _id_by_title(client: Client, title: str) -> str:
    for namespace in await client.list_namespaces():
        if namespace.title == title:
            return namespace.id
    raise error(ErrorKind.NAMESPACE_NOT_FOUND, operation="get", namespace_id=title)


async def namespace_delete(args: argparse.Namespace) -> int:
    async with _central(args) as client:
        if args.name and not (args.binding or args.namespace_id):
            namespace_id = await _id_by_title(client, args.name)
        else:
            namespace_id = _namespace_id(args)
        question = f"Are you sure you want to delete namespace {namespace_id}? It cannot be undone."
        if not _confirm(question, args.yes):
            print("Not deleting.")
            return 0
        print(f"Deleting KV namespace {namespace_id}.")
        await client.delete_namespace(namespace_id)
    print(f"Deleted KV namespace {namespace_id}.")
    return 0


async def namespace_rename(args: argparse.Namespace) -> int:
    if len(args.new_name) > limits.MAX_NAMESPACE_TITLE_CHARS:
        raise UsageError(
            f"--new-name is {len(args.new_name)} characters; "
            f"the limit is {limits.MAX_NAMESPACE_TITLE_CHARS}"
        )
    async with _central(args) as client:
        if args.namespace_id:
            namespace_id = args.namespace_id
        elif args.old_name:
            namespace_id = await _id_by_title(client, args.old_name)
        else:
            raise UsageError("either the namespace's current name or --namespace-id must be given")
        print(f'Renaming KV namespace {namespace_id} to "{args.new_name}".')
        renamed = await client.rename_namespace(namespace_id, args.new_name)
    print(f'✨ Successfully renamed namespace to "{renamed.title}"')
    return 0


# -- kv key ------------------------------------------------------------------------------


async def key_put(args: argparse.Namespace) -> int:
    if (args.value is None) == (args.path is None):
        raise UsageError("give exactly one of VALUE or --path FILE")
    metadata = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except ValueError as exc:
            raise UsageError(f"--metadata is not valid JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise UsageError("--metadata must be a JSON object")
    target = _target(args)
    value: bytes | str
    if args.path is not None:
        value = await asyncio.to_thread(Path(args.path).read_bytes)
        print(
            f'Writing the contents of {args.path} to the key "{args.key}" '
            f"on namespace {target.namespace_id}."
        )
    else:
        value = args.value
        with_metadata = f' with metadata "{args.metadata}"' if metadata is not None else ""
        print(
            f'Writing the value "{args.value}" to key "{args.key}" on namespace '
            f"{target.namespace_id}{with_metadata}."
        )
    async with target.client:
        await target.kv.put(
            args.key,
            value,
            expiration=args.expiration,
            expiration_ttl=args.ttl,
            metadata=metadata,
        )
    return 0


async def key_get(args: argparse.Namespace) -> int:
    target = _target(args, args.region)
    async with target.client:
        read = await target.kv.get_with_metadata(args.key, type="bytes", cache_ttl=args.cache_ttl)
    if args.verbose:
        info = read.info
        print(
            f"revision={info.revision} cache_status={read.cache_status or '-'} "
            f"age_s={info.age_s:.3f} region={info.region} node={info.node}",
            file=sys.stderr,
        )
    if read.value is None:
        print("Value not found", file=sys.stderr)
        return 1
    if args.text:
        print(read.value.decode("utf-8", "replace"))
    else:
        sys.stdout.buffer.write(read.value)
        sys.stdout.flush()
    return 0


async def key_list(args: argparse.Namespace) -> int:
    target = _target(args, args.region)
    listed = []
    async with target.client:
        async for key in target.kv.list_all(prefix=args.prefix):
            item: dict[str, Any] = {"name": key.name}
            if key.expiration is not None:
                item["expiration"] = key.expiration
            if key.metadata is not None:
                item["metadata"] = key.metadata
            listed.append(item)
    _print_json(listed)
    return 0


async def key_delete(args: argparse.Namespace) -> int:
    target = _target(args)
    print(f'Deleting the key "{args.key}" on namespace {target.namespace_id}.')
    async with target.client:
        await target.kv.delete(args.key)
    return 0


# -- kv bulk -----------------------------------------------------------------------------


def _read_json_array(path: str) -> list[Any]:
    try:
        parsed = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(parsed, list):
        raise UsageError(f"{path}: expected a JSON array, got {type(parsed).__name__}")
    return parsed


def bulk_entries(path: str) -> list[BulkPutEntry]:
    """Read a bulk-put file as wrangler does: key, value, expiration(_ttl), metadata, base64."""
    entries = []
    unexpected: set[str] = set()
    for index, item in enumerate(_read_json_array(path)):
        where = f"{path}: entry {index}"
        if not isinstance(item, dict):
            raise UsageError(f"{where} must be an object with a key and a value")
        if not isinstance(item.get("key"), str) or not isinstance(item.get("value"), str):
            raise UsageError(f'{where} needs a string "key" and a string "value"')
        for name in ("expiration", "expiration_ttl"):
            if name in item and not isinstance(item[name], int | float):
                raise UsageError(f'{where}: "{name}" must be a number')
        if "metadata" in item and not isinstance(item["metadata"], dict):
            raise UsageError(f'{where}: "metadata" must be an object')
        if "base64" in item and not isinstance(item["base64"], bool):
            raise UsageError(f'{where}: "base64" must be true or false')
        unexpected |= set(item) - BULK_ENTRY_FIELDS
        value: bytes | str = item["value"]
        if item.get("base64"):
            try:
                value = base64.b64decode(item["value"], validate=True)
            except binascii.Error:
                raise UsageError(f'{where}: "value" is not valid base64') from None
        expiration, ttl = item.get("expiration"), item.get("expiration_ttl")
        entries.append(
            BulkPutEntry(
                key=item["key"],
                value=value,
                expiration=None if expiration is None else int(expiration),
                expiration_ttl=None if ttl is None else int(ttl),
                metadata=item.get("metadata"),
            )
        )
    if unexpected:
        ignored = ", ".join(sorted(unexpected))
        print(f"Warning: unexpected properties in {path} are ignored: {ignored}", file=sys.stderr)
    return entries


def _bulk_keys(path: str) -> list[str]:
    keys = []
    for index, item in enumerate(_read_json_array(path)):
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            keys.append(item["name"])
        else:
            raise UsageError(f'{path}: entry {index} must be a string or an object with a "name"')
    return keys


async def _send_in_chunks(
    items: Sequence[T],
    send: Callable[[Sequence[T]], Awaitable[BulkResult]],
    verb: str,
    refused: str,
) -> None:
    """Send ``items`` in chunks of 1,000 (as wrangler does), with progress above 1,000.

    Raises one line naming the first entry central refused and how many were.
    """
    failed: list[str] = []
    for start in range(0, len(items), BULK_CHUNK_ENTRIES):
        chunk = items[start : start + BULK_CHUNK_ENTRIES]
        result = await send(chunk)
        failed += [f"{r.key}: {r.error_message}" for r in result.results if not r.ok]
        done = start + len(chunk)
        if len(items) > BULK_CHUNK_ENTRIES:
            print(
                f"{verb} {done * 100 // len(items)}% ({done} out of {len(items)})", file=sys.stderr
            )
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise UsageError(f"{len(failed)} of {len(items)} {refused}: {failed[0]}{more}")


async def bulk_put(args: argparse.Namespace) -> int:
    entries = bulk_entries(args.file)
    total_bytes = sum(
        len(e.key.encode()) + len(e.value if isinstance(e.value, bytes) else e.value.encode())
        for e in entries
    )
    validate_bulk_shape(len(entries), total_bytes)
    target = _target(args)
    async with target.client:
        await _send_in_chunks(entries, target.kv.bulk_put, "Uploaded", "entries were not written")
    print("Success!")
    return 0


async def bulk_delete(args: argparse.Namespace) -> int:
    keys = _bulk_keys(args.file)
    validate_bulk_shape(len(keys), sum(len(k.encode()) for k in keys))
    target = _target(args)
    async with target.client:
        question = (
            f'Are you sure you want to delete all the keys read from "{args.file}" '
            f"from kv-namespace {target.namespace_id}?"
        )
        if not _confirm(question, args.force):
            print(f'Not deleting keys read from "{args.file}".')
            return 0
        await _send_in_chunks(keys, target.kv.bulk_delete, "Deleted", "keys were not deleted")
    print("Success!")
    return 0


async def bulk_get(args: argparse.Namespace) -> int:
    keys = _bulk_keys(args.file)
    target = _target(args, args.region)
    values: dict[str, Any] = {}
    async with target.client:
        for start in range(0, len(keys), limits.MAX_GET_MANY_KEYS):
            chunk = keys[start : start + limits.MAX_GET_MANY_KEYS]
            values.update(await target.kv.get(chunk, type="text"))
    _print_json(values)
    return 0


# -- the parser ---------------------------------------------------------------------------


def _group(kv: Subcommands, name: str, help_text: str, example: str) -> Subcommands:
    """``edgekv kv NAME``: a group of actions, added to what this returns."""
    parent = kv.add_parser(name, help=help_text, epilog=f"example: {example}")
    return parent.add_subparsers(dest="action", metavar="ACTION", required=True)


def _command(
    group: Subcommands, name: str, help_text: str, example: str, run: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example: {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(run=run)
    return parser


def _register_namespace(kv: Subcommands) -> None:
    group = _group(
        kv,
        "namespace",
        "create, list, rename and delete namespaces",
        "edgekv kv namespace create MY_KV --update-config",
    )
    create = _command(
        group,
        "create",
        "Create a namespace and print the kv_namespaces snippet for it.",
        "edgekv kv namespace create MY_KV --env staging",
        namespace_create,
    )
    create.add_argument("namespace", metavar="NAME", help="the binding name")
    _add_config_flags(create)
    create.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a namespace for preview_id",
    )
    create.add_argument("--update-config", action="store_true", help="add it to the config")

    listing = _command(
        group, "list", "List every namespace as JSON.", "edgekv kv namespace list", namespace_list
    )
    _add_config_flags(listing)

    delete = _command(
        group,
        "delete",
        "Delete a namespace and every key in it.",
        "edgekv kv namespace delete --binding MY_KV --env staging -y",
        namespace_delete,
    )
    delete.add_argument("name", nargs="?", metavar="NAME", help="the namespace's title")
    _add_namespace_flags(delete)
    delete.add_argument("-y", "--skip-confirmation", dest="yes", action="store_true")

    rename = _command(
        group,
        "rename",
        "Give a namespace a new title.",
        'edgekv kv namespace rename --namespace-id 0f2a... --new-name "my-new-title"',
        namespace_rename,
    )
    rename.add_argument("old_name", nargs="?", metavar="OLD_NAME", help="the current title")
    _add_config_flags(rename)
    rename.add_argument("--namespace-id", metavar="ID")
    rename.add_argument("--new-name", required=True, metavar="TITLE")


def _register_key(kv: Subcommands) -> None:
    group = _group(
        kv,
        "key",
        "put, get, list and delete keys",
        'edgekv kv key put greeting "hello" --binding MY_KV',
    )
    put = _command(
        group,
        "put",
        "Write one key.",
        'edgekv kv key put greeting "hello" --binding MY_KV --ttl 3600',
        key_put,
    )
    put.add_argument("key", metavar="KEY")
    put.add_argument("value", nargs="?", metavar="VALUE")
    _add_namespace_flags(put)
    put.add_argument("--path", metavar="FILE", help="write the contents of FILE")
    put.add_argument("--ttl", type=int, metavar="SECONDS", help="expiration_ttl, at least 60")
    put.add_argument("--expiration", type=int, metavar="EPOCH", help="absolute expiration")
    put.add_argument("--metadata", metavar="JSON", help="a JSON object")
    _add_retry_flag(put)

    get = _command(
        group,
        "get",
        "Read one key; the raw bytes go to stdout.",
        "edgekv kv key get greeting --binding MY_KV --text --region eu-west --verbose",
        key_get,
    )
    get.add_argument("key", metavar="KEY")
    _add_namespace_flags(get)
    get.add_argument("--text", action="store_true", help="decode as UTF-8 and print a line")
    _add_region_flags(get, "read")
    get.add_argument("--cache-ttl", type=int, metavar="S", help="the reader's cacheTtl")
    get.add_argument("--verbose", action="store_true", help="revision, cache status to stderr")

    listing = _command(
        group,
        "list",
        "List keys as JSON, following cursors to the end.",
        'edgekv kv key list --binding MY_KV --prefix "user:"',
        key_list,
    )
    _add_namespace_flags(listing)
    listing.add_argument("--prefix", metavar="P")
    _add_region_flags(listing, "list")

    delete = _command(
        group,
        "delete",
        "Delete one key.",
        "edgekv kv key delete greeting --binding MY_KV",
        key_delete,
    )
    delete.add_argument("key", metavar="KEY")
    _add_namespace_flags(delete)
    _add_retry_flag(delete)


def _register_bulk(kv: Subcommands) -> None:
    group = _group(
        kv,
        "bulk",
        "put, delete and get many keys from a JSON file",
        "edgekv kv bulk put entries.json --binding MY_KV",
    )
    put = _command(
        group,
        "put",
        "Write the entries of a JSON array of {key, value, expiration?, expiration_ttl?, "
        "metadata?, base64?} (at most 10,000).",
        "edgekv kv bulk put entries.json --binding MY_KV",
        bulk_put,
    )
    put.add_argument("file", metavar="FILE")
    _add_namespace_flags(put)
    _add_retry_flag(put)

    delete = _command(
        group,
        "delete",
        'Delete the keys of a JSON array of strings or {"name": ...} objects.',
        "edgekv kv bulk delete keys.json --binding MY_KV --force",
        bulk_delete,
    )
    delete.add_argument("file", metavar="FILE")
    _add_namespace_flags(delete)
    delete.add_argument("-f", "--force", action="store_true", help="do not ask")
    _add_retry_flag(delete)

    get = _command(
        group,
        "get",
        "Read the keys of a JSON array and print {key: value or null}.",
        "edgekv kv bulk get keys.json --binding MY_KV",
        bulk_get,
    )
    get.add_argument("file", metavar="FILE")
    _add_namespace_flags(get)
    _add_region_flags(get, "read")


def register(subcommands: Subcommands) -> None:
    kv = subcommands.add_parser(
        "kv",
        help="manage namespaces and keys, as wrangler's kv commands do",
        description="wrangler's kv namespace / kv key / kv bulk commands, against edgekv.",
        epilog="example: edgekv kv key get greeting --binding MY_KV --region eu-west --text",
    )
    group = kv.add_subparsers(dest="kv_command", metavar="GROUP", required=True)
    _register_namespace(group)
    _register_key(group)
    _register_bulk(group)


COLON_SPELLINGS = {"kv:namespace": "namespace", "kv:key": "key", "kv:bulk": "bulk"}
PREVIEW_SPELLINGS = {
    ("--preview", "false"): "--no-preview",
    ("--preview", "true"): "--preview",
}


def wrangler_argv(argv: Sequence[str]) -> list[str]:
    """Accept wrangler's spellings: ``kv:namespace …`` and ``--preview false``."""
    words = list(argv)
    if words and words[0] in COLON_SPELLINGS:
        words = ["kv", COLON_SPELLINGS[words[0]], *words[1:]]
    rewritten: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        following = words[index + 1].lower() if index + 1 < len(words) else ""
        if word.startswith("--preview="):
            word, following, index = "--preview", word.split("=", 1)[1].lower(), index - 1
        spelled = PREVIEW_SPELLINGS.get((word, following))
        if spelled is not None:
            rewritten.append(spelled)
            index += 2
        else:
            rewritten.append(word)
            index += 1
    return rewritten
