"""Workers-style bindings: ``env = await edgekv.bindings("wrangler.toml")``, then ``env.MY_KV``.

(The module is not called ``bindings``: a submodule of that name would replace
the ``edgekv.bindings`` function on the package once imported.)

Theory of operation: the configuration names bindings and namespace ids
(:mod:`edgekv.config`); the cluster's addresses come from :mod:`edgekv.locate`.
With a ``region`` every binding reads and writes through that region's edge,
as a Worker running there would; without one, through the central store.
A write refused by the one-write-per-second rule raises ``RateLimitedError``
at once, as in a Worker: bindings never write again by themselves. Each binding
is a :class:`~edgekv.client.KVNamespace`, so it takes numbers as a Worker's
binding does (int32s: ``expiration=2**31`` is a TypeError, ``Value out of
range``) and reports errors in its words (``KV PUT failed: 429 Too Many
Requests``).
The returned :class:`Bindings` owns one client: close it, or use ``async with``.
"""

from __future__ import annotations

from pathlib import Path

from edgekv.client import Client, KVNamespace
from edgekv.closing import AsyncClosing
from edgekv.config import ConfigError, find_config, load_config, resolve_id
from edgekv.locate import locate_central, locate_edge


class Bindings(AsyncClosing):
    def __init__(self, client: Client, namespaces: dict[str, KVNamespace]) -> None:
        self.client = client
        self._namespaces = namespaces

    def __getattr__(self, name: str) -> KVNamespace:
        try:
            return self._namespaces[name]
        except KeyError:
            known = ", ".join(sorted(self._namespaces)) or "none"
            raise AttributeError(f"no KV binding named {name!r} (bindings: {known})") from None

    def __getitem__(self, name: str) -> KVNamespace:
        return self.__getattr__(name)

    def __dir__(self) -> list[str]:
        return sorted(self._namespaces)

    async def close(self) -> None:
        await self.client.close()


async def bindings(
    config: str | Path | None = None,
    env: str | None = None,
    region: str | None = None,
    *,
    preview: bool | None = None,
    central: str | None = None,
    edge: str | None = None,
) -> Bindings:
    """The KV bindings of ``config`` (default: the nearest wrangler config) in ``env``."""
    path = Path(config) if config is not None else find_config()
    if path is None:
        raise ConfigError("no wrangler.toml, wrangler.json or wrangler.jsonc here or above")
    parsed = load_config(path)
    ids = {b.binding: resolve_id(b, preview, parsed.path) for b in parsed.environment(env)}
    # A Worker sees a 429: so does a binding (retry_rate_limited stays off).
    if region is not None:
        client = Client(edge=locate_edge(region, edge), retry_rate_limited=False)
    else:
        client = Client(central=locate_central(central), retry_rate_limited=False)
    return Bindings(client, {name: client.namespace(ns_id) for name, ns_id in ids.items()})
