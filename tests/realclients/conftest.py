"""Fixtures for the tests that run real Cloudflare clients (wrangler) against edgekv.

``wrangler_bin`` installs wrangler once per session; without Node.js or wrangler
the tests fail, on a developer's machine and in CI alike, never skip: Node.js
comes with the dev extras. ``make_wrangler(base_url)`` gives a
:class:`~tests.realclients.wrangler.Wrangler` with a work directory of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.realclients.wrangler import (
    TEST_ACCOUNT_ID,
    TEST_TOKEN,
    MakeWrangler,
    Wrangler,
    WranglerBin,
    WranglerUnavailable,
    wrangler_install,
)


@pytest.fixture(scope="session")
def wrangler_bin() -> WranglerBin:
    try:
        return wrangler_install()
    except WranglerUnavailable as e:
        why = str(e)
    pytest.fail(why, pytrace=False)  # outside the except: no chained traceback


@pytest.fixture
def make_wrangler(wrangler_bin: WranglerBin, tmp_path: Path) -> MakeWrangler:
    made = 0

    def make(
        base_url: str,
        token: str = TEST_TOKEN,
        account_id: str = TEST_ACCOUNT_ID,
        extra_env: dict[str, str] | None = None,
    ) -> Wrangler:
        nonlocal made
        made += 1
        return Wrangler(
            cli=wrangler_bin,
            base_url=base_url,
            token=token,
            account_id=account_id,
            workdir=tmp_path / f"wrangler-{made}",
            extra_env=dict(extra_env or {}),
        )

    return make
