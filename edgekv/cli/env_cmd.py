"""``edgekv env``: the environment that points wrangler and the Cloudflare SDKs at a cluster.

``eval "$(edgekv env)"`` sets, for the cluster ``edgekv up`` started,
``CLOUDFLARE_API_BASE_URL`` (wrangler's base URL), ``CLOUDFLARE_BASE_URL`` (the
Python SDK's), ``CLOUDFLARE_API_TOKEN`` and ``CLOUDFLARE_ACCOUNT_ID`` (so that
wrangler asks for no account list), and turns wrangler's telemetry off
(``WRANGLER_SEND_METRICS=false``), which would otherwise try to reach
Cloudflare. ``--shell fish`` and ``--shell powershell`` print the same for those
shells.
"""

from __future__ import annotations

import argparse
import shlex

from edgekv.cli.common import Subcommands
from edgekv.core.errors import UsageError


def register(subcommands: Subcommands) -> None:
    parser = subcommands.add_parser(
        "env",
        help="print the exports that point wrangler and the Cloudflare SDK at the cluster",
        description="Print shell commands that set CLOUDFLARE_API_BASE_URL, CLOUDFLARE_BASE_URL, "
        "CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID for the cluster `edgekv up` started.",
        epilog='example: eval "$(edgekv env)"',
    )
    parser.add_argument(
        "--shell", choices=("sh", "fish", "powershell"), default="sh", help="default sh (bash, zsh)"
    )
    parser.set_defaults(run=run)


def variables(api: str, token: str, account_id: str, tls_ca: str | None = None) -> dict[str, str]:
    """The exports; for a TLS cluster (``tls_ca``) the URLs are https, and Node.js
    (wrangler) is told to trust the cluster's CA as well as its own."""
    base_url = f"{'http' if tls_ca is None else 'https'}://{api}/client/v4"
    return {
        "CLOUDFLARE_API_BASE_URL": base_url,
        "CLOUDFLARE_BASE_URL": base_url,
        "CLOUDFLARE_API_TOKEN": token,
        "CLOUDFLARE_ACCOUNT_ID": account_id,
        "WRANGLER_SEND_METRICS": "false",
        **({} if tls_ca is None else {"NODE_EXTRA_CA_CERTS": tls_ca}),
    }


def render(values: dict[str, str], shell: str) -> str:
    if shell == "fish":
        return "".join(f"set -gx {name} {shlex.quote(value)};\n" for name, value in values.items())
    if shell == "powershell":
        quoted = {name: "'" + value.replace("'", "''") + "'" for name, value in values.items()}
        return "".join(f"$Env:{name} = {value}\n" for name, value in quoted.items())
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


async def run(args: argparse.Namespace) -> int:
    from edgekv.locate import read_state, state_file_path

    state = read_state()
    if state is None:
        raise UsageError(
            f"no cluster state in {state_file_path()}: start a cluster with `edgekv up`"
        )
    if state.api is None or state.api_token is None or state.account_id is None:
        raise UsageError(
            f"the cluster in {state_file_path()} has no API node: restart it with `edgekv up`"
        )
    exports = variables(state.api, state.api_token, state.account_id, state.tls_ca)
    print(render(exports, args.shell), end="")
    return 0
