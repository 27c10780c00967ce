"""The tracking parameters of a click URL's query string: ``sub1``…``sub5`` and ``source_id``.

``parse_click_query`` takes the raw query bytes exactly as the client sent them and
never raises. For each wanted key (the first occurrence wins):

- ``+`` means a space, then ``%XX`` escapes are decoded to bytes. A malformed escape
  (``%zz``, a lone ``%``) is kept literally, as browsers do.
- If the decoded bytes are valid UTF-8 and contain no NUL, the value is exactly that
  string: emoji, CR/LF and any other Unicode round-trip byte for byte.
- Otherwise (invalid UTF-8, or a NUL, which Postgres text cannot hold) the value is the
  canonical percent-encoded form of the bytes: every byte outside ``A-Z a-z 0-9 - . _ ~``
  as upper-case ``%XX``. That form is pure ASCII and lossless (``unquote_to_bytes``
  gives the bytes back), but it is not marked: a visitor who literally sent ``%25FF``
  stores the same text ``%FF`` as one who sent the raw byte ``%FF``.
- An empty value is ``None``.

A query longer than ``max_bytes`` is ignored as a whole (every field ``None``): the
click is still answered and recorded, without sub ids.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote_from_bytes, unquote_to_bytes


class ClickQuery(NamedTuple):
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    source_id: str | None = None


EMPTY_QUERY = ClickQuery()
_FIELD_INDEX = {name.encode(): i for i, name in enumerate(ClickQuery._fields)}
_FIELD_COUNT = len(ClickQuery._fields)


def decode_query_value(raw: bytes) -> str | None:
    """One query value as stored (see the module docstring); ``None`` when empty."""
    if not raw:
        return None
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return quote_from_bytes(raw, safe="")
    if "\x00" in text:
        return quote_from_bytes(raw, safe="")
    return text


def _decode_key(raw: bytes) -> bytes:
    return unquote_to_bytes(raw.replace(b"+", b" "))


def parse_click_query(query: bytes, max_bytes: int) -> ClickQuery:
    if not query or len(query) > max_bytes:
        return EMPTY_QUERY
    values: list = [None] * _FIELD_COUNT
    seen = 0
    for pair in query.split(b"&"):
        key, _, raw = pair.partition(b"=")
        index = _FIELD_INDEX.get(key)
        if index is None and (b"%" in key or b"+" in key):
            index = _FIELD_INDEX.get(_decode_key(key))
        if index is None or seen & (1 << index):
            continue
        seen |= 1 << index
        values[index] = decode_query_value(raw)
    if not seen:
        return EMPTY_QUERY
    return ClickQuery(*values)
