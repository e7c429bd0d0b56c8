"""``edgekv token create|list|revoke``: the operator's API tokens.

``create`` prints the token alone on standard output (so that
``TOKEN=$(edgekv token create --account ID)`` works) and says nothing else
there; the token is shown this once — central keeps only its SHA-256. These
calls authenticate as the operator: with ``--token`` / ``EDGEKV_TOKEN`` (the
operator token), with ``--operator-token-file``, or, for a cluster of
``edgekv up``, with the operator token file its state file names. A central
without ``--auth`` takes them without a token too.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgekv.cli.common import Subcommands, add_client_tls_flag

if TYPE_CHECKING:
    from edgekv.client import Client


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "token",
        help="create, list and revoke API tokens (the REST API's, and gRPC's with --auth)",
        description="Manage the API tokens central keeps. A token belongs to an account and "
        "reaches that account's namespaces only (maybe read-only, maybe some namespaces).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="make a token; prints it alone on standard output",
        epilog="example: edgekv token create --account 0123456789abcdef0123456789abcdef",
    )
    create.add_argument(
        "--account",
        required=True,
        metavar="ID",
        help="the account: 32 hexadecimal characters (new if nothing names it yet)",
    )
    create.add_argument("--read-only", action="store_true", help="a token that cannot write")
    create.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="ID",
        help="reach only this namespace (repeat for more; default: every one of the account)",
    )
    create.set_defaults(run=run_create)
    listing = actions.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=run_list)
    revoke = actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.set_defaults(run=run_revoke)
    for action in (create, listing, revoke):
        _add_connection_flags(action)


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--central",
        metavar="HOST:PORT",
        help="the central store (replicas: HOST:PORT,HOST:PORT,... or dns:///NAME:PORT)",
    )
    parser.add_argument(
        "--token", metavar="TOKEN", help="the operator token (default: $EDGEKV_TOKEN)"
    )
    add_client_tls_flag(parser, "central")
    parser.add_argument(
        "--operator-token-file",
        type=Path,
        metavar="FILE",
        help="read the operator token from FILE (default: the one `edgekv up` made)",
    )


def _client(args: argparse.Namespace) -> Client:
    from edgekv.client import Client
    from edgekv.locate import locate_central, read_state
    from edgekv.operator_token import read_operator_token

    token = args.token or os.environ.get("EDGEKV_TOKEN") or None
    if token is None and args.operator_token_file is not None:
        token = read_operator_token(args.operator_token_file)
    if token is None and args.central is None and not os.environ.get("EDGEKV_CENTRAL"):
        state = read_state(os.environ)
        if state is not None and state.operator_token_file:
            token = read_operator_token(Path(state.operator_token_file))
    return Client(central=locate_central(args.central), token=token, tls_ca=args.tls_ca)


async def run_create(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        token, _info = await client.create_token(
            args.account, read_only=args.read_only, namespace_ids=args.namespace
        )
    finally:
        await client.close()
    print(token, flush=True)
    return 0


async def run_list(args: argparse.Namespace) -> int:
    import json

    client = _client(args)
    try:
        tokens = await client.list_tokens()
    finally:
        await client.close()
    for info in tokens:
        fields = {
            "token_id": info.token_id,
            "account_id": info.account_id,
            "access": "read" if info.read_only else "read-write",
            "namespaces": list(info.namespace_ids) or "all",
            "created": datetime.fromtimestamp(info.created_at, UTC).isoformat(timespec="seconds"),
        }
        if args.json:
            print(json.dumps(fields))
        else:
            namespaces = fields["namespaces"]
            shown = namespaces if isinstance(namespaces, str) else ",".join(namespaces)
            print(
                f"{info.token_id}  account {info.account_id}  {fields['access']}  "
                f"namespaces {shown}  created {fields['created']}"
            )
    if not tokens and not args.json:
        print("no tokens")
    return 0


async def run_revoke(args: argparse.Namespace) -> int:
    client = _client(args)
    try:
        await client.revoke_token(args.token_id)
    finally:
        await client.close()
    print(f"revoked {args.token_id}")
    return 0
