"""``redis+sentinel://`` URLs: the form central.storage.redis_connect defines, refused in one
line when malformed, and their passwords kept out of sight as redis:// ones are."""

from __future__ import annotations

import re

import pytest

from central.storage.redis_connect import SentinelAddress, parse_sentinel_url
from edgekv.redis_urls import redact, split_password, with_password


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/mymaster",
            SentinelAddress((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "mymaster"),
        ),
        (
            "redis+sentinel://s1:26379/mymaster/3",
            SentinelAddress((("s1", 26379),), "mymaster", 3),
        ),
        (
            "redis+sentinel://[::1]:26379,s2:1/my%2Fmaster/0",
            SentinelAddress((("::1", 26379), ("s2", 1)), "my/master"),
        ),
        (
            "redis+sentinel://ops%40lab:p%40ss%3Aword@s1:26379/m",
            SentinelAddress((("s1", 26379),), "m", 0, "ops@lab", "p@ss:word"),
        ),
        (
            "redis+sentinel://:secret@s1:26379/m/1",
            SentinelAddress((("s1", 26379),), "m", 1, None, "secret"),
        ),
    ],
)
def test_a_sentinel_url_names_sentinels_master_database_and_login(
    url: str, address: SentinelAddress
) -> None:
    assert parse_sentinel_url(url) == address


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+sentinel://s1:26379", "no master name after the Sentinels"),
        ("redis+sentinel://s1:26379//0", "no master name after the Sentinels"),
        ("redis+sentinel://s1/mymaster", "Sentinel 's1' is not HOST:PORT"),
        ("redis+sentinel://s1:26379,,s2:26379/m", "Sentinel '' is not HOST:PORT"),
        ("redis+sentinel://s1:x/m", "Sentinel 's1:x': its port is not a number from 1 to 65535"),
        ("redis+sentinel://s1:0/m", "Sentinel 's1:0': its port is not a number from 1 to 65535"),
        ("redis+sentinel://s1:26379/m/x", "database 'x' is not a number"),
        ("redis+sentinel://s1:26379/m/0/1", "database '0/1' is not a number"),
        ("redis+sentinel://s1:26379/m?db=1", "a Sentinel URL takes no query string or fragment"),
        ("redis://s1:26379/m", "expected redis+sentinel://"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_saying_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(reason)) as caught:
        parse_sentinel_url(url)
    assert "\n" not in str(caught.value)


def test_the_password_of_a_sentinel_url_is_redacted_wherever_it_is_printed() -> None:
    text = "storage=redis+sentinel://ops:pa@ss@s1:26379,s2:26379/m/0 and redis://:x@h:1/0"
    assert redact(text) == (
        "storage=redis+sentinel://ops:***@s1:26379,s2:26379/m/0 and redis://:***@h:1/0"
    )
    assert redact("redis+sentinel://s1:26379,s2:26379/m") == "redis+sentinel://s1:26379,s2:26379/m"


def test_a_sentinel_url_takes_its_password_from_the_environment_and_gives_it_up() -> None:
    bare = "redis+sentinel://s1:26379,s2:26379/m/0"
    filled = with_password(bare, "p w")
    assert filled == "redis+sentinel://:p%20w@s1:26379,s2:26379/m/0"
    assert parse_sentinel_url(filled).password == "p w"
    assert split_password(filled) == (bare, "p w")
    assert with_password("redis+sentinel://:own@s1:1/m", "other") == "redis+sentinel://:own@s1:1/m"
