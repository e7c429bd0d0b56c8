"""Text as a Worker's KV binding turns it into bytes and back.

Theory of operation: JavaScript strings are UTF-16 and may hold lone
surrogates; stored values are bytes, which need not be UTF-8. Workers bridges
the two leniently, and so does edgekv's Python API:

* **Reading as text** decodes UTF-8 as the WHATWG ``TextDecoder`` does: each
  invalid sequence becomes one U+FFFD, and a byte order mark is kept as
  U+FEFF. Python's ``"replace"`` error handler replaces the same maximal
  subparts (checked against workerd: ``61 ff 62 ed b0 80`` reads as
  ``"a\\ufffdb\\ufffd\\ufffd\\ufffd"`` in both). A bulk read's values are
  decoded by Workers' server, with a ``TextDecoder`` left to its default,
  which drops a leading byte order mark: there, so is it here.
* **Writing text** encodes it as WTF-8, as workerd does: UTF-8, except that a
  lone surrogate becomes its three-byte form (``\\udc00`` → ``ed b0 80``). A
  Python str can also hold a surrogate *pair* as two code points; JavaScript
  sees one character there, so pairs are joined first.
* **JSON text** (metadata) escapes lone surrogates as ``\\udc00``, as
  ``JSON.stringify`` does, so that the text is valid UTF-8 and reads back as
  the same string.
* **Keys a server reads from a body or a query** — a bulk read's keys, a
  list's prefix — are that WTF-8 read leniently: each byte of a lone
  surrogate becomes a U+FFFD (Miniflare answers a bulk read of ``"a\\udc00"``
  under the key ``"a\\ufffd\\ufffd\\ufffd"``). A single key travels in the
  URL's path instead, which Workers' server refuses to decode.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


_BOM = b"\xef\xbb\xbf"


def decode_text(value: bytes, drop_bom: bool = False) -> str:
    """``value`` read as text, each invalid UTF-8 sequence one U+FFFD (as TextDecoder);
    ``drop_bom`` drops a leading byte order mark, as TextDecoder does by default."""
    if drop_bom and value.startswith(_BOM):
        value = value[len(_BOM) :]
    return value.decode("utf-8", "replace")


def lenient_key(key: str) -> str:
    """``key`` as Workers' server reads it from a body or a query: WTF-8, read leniently."""
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return decode_text(encode_text(key))
    return key


def _joined_pairs(text: str) -> str:
    """``text`` with each surrogate pair joined into the one code point it stands for."""
    # UTF-16 keeps a pair as the two units it is; decoding them back joins them.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def encode_text(text: str) -> bytes:
    """``text`` as WTF-8: UTF-8, with a lone surrogate in its three-byte form."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # rare: only then pay for joining pairs
        return _joined_pairs(text).encode("utf-8", "surrogatepass")


def well_formed_json(json_text: str) -> str:
    """JSON text with its lone surrogates escaped (``\\udc00``), as JSON.stringify writes them.

    A surrogate can only stand inside a JSON string, where an escape means the same.
    """
    if _SURROGATE.search(json_text) is None:
        return json_text
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", _joined_pairs(json_text))
