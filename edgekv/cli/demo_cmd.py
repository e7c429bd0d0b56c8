"""``edgekv demo``: the README's main job.

Until the cluster demo exists, it starts a real central store (the
``edgekv central`` command, as a child process, on a temporary SQLite file),
then runs a namespace / put / get / list round trip through the Python client
and prints each step.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import edgekv


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="start a central store and run a short round trip against it",
        description="Start a central store on a temporary SQLite file, then create a "
        "namespace, write, read and list keys through the Python client.",
        epilog="example: edgekv demo",
    )
    parser.set_defaults(run=run)


async def start_central_process(db_path: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Run ``edgekv central`` on port 0; return the process and its address."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edgekv",
        "central",
        "--listen",
        "127.0.0.1:0",
        "--storage",
        f"sqlite:{db_path}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    if "ready on" not in line:
        process.kill()
        raise OSError(f"the central store did not start: {line.strip() or 'no output'}")
    address = line.split("ready on ", 1)[1].split()[0]
    return process, address


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="edgekv-demo-") as tmp:
        db_path = Path(tmp) / "central.db"
        process, address = await start_central_process(db_path)
        print(f"started central store at {address} on sqlite:{db_path}")
        try:
            await round_trip(address)
        finally:
            process.terminate()
            await process.wait()
        print(f"stopped central store (exit code {process.returncode})")
    return 0


async def round_trip(address: str) -> None:
    async with edgekv.Client(central=address) as client:
        ns = await client.create_namespace("demo-MY_KV")
        print(f"created namespace {ns.title!r} with id {ns.id}")
        kv = client.namespace(ns.id)
        written = await kv.put("greeting", "hello, edge", metadata={"lang": "en"})
        print(f'put "greeting" = "hello, edge" -> revision {written.revision}')
        for name in ("user:1", "user:2", "user:3"):
            await kv.put(name, f"profile of {name}", expiration_ttl=3600)
        print("put user:1, user:2, user:3 (expiring in 3600 s)")
        result = await kv.get_with_metadata("greeting")
        print(
            f'get "greeting" -> {result.value!r}, metadata {result.metadata}, '
            f"revision {result.info.revision}"
        )
        print(f'get "missing" -> {await kv.get("missing")!r}')
        page = await kv.list(prefix="user:", limit=2)
        print(
            f'list prefix="user:" limit=2 -> {[k.name for k in page.keys]}, '
            f"list_complete={page.list_complete}"
        )
        rest = await kv.list(prefix="user:", cursor=page.cursor)
        print(
            f"list next page -> {[k.name for k in rest.keys]}, list_complete={rest.list_complete}"
        )
        try:
            await kv.put("", "x")
        except edgekv.KVError as exc:
            print(f'put "" -> refused: {exc.message}')
        try:
            await kv.put("greeting", "hello again")
        except edgekv.RateLimitedError as exc:
            print(f'put "greeting" again at once -> refused: {exc.message} (1 write/s per key)')
        await kv.delete("missing")
        print('delete "missing" -> ok (deleting a missing key succeeds)')
