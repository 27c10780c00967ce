from urllib.parse import unquote_to_bytes

import pytest

from core.click_query import EMPTY_QUERY, ClickQuery, decode_query_value, parse_click_query

MAX = 8192


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", EMPTY_QUERY),
        (b"sub1=abc&sub5=z&source_id=s-1", ClickQuery(sub1="abc", sub5="z", source_id="s-1")),
        (b"sub1=a+b%20c", ClickQuery(sub1="a b c")),
        (b"sub2=%F0%9F%98%80", ClickQuery(sub2="\U0001F600")),
        (b"sub1=%0D%0ASet-Cookie:%20x=1", ClickQuery(sub1="\r\nSet-Cookie: x=1")),
        (b"sub1=%zz", ClickQuery(sub1="%zz")),
        (b"sub1=%", ClickQuery(sub1="%")),
        (b"sub1=100%", ClickQuery(sub1="100%")),
        (b"sub1=%FF", ClickQuery(sub1="%FF")),
        (b"sub1=\xff\xfe", ClickQuery(sub1="%FF%FE")),
        (b"sub1=a%00b", ClickQuery(sub1="a%00b")),
        (b"sub1=%C3%A9%FF%25", ClickQuery(sub1="%C3%A9%FF%25")),
        (b"sub1=caf\xc3\xa9", ClickQuery(sub1="caf\u00e9")),
        (b"sub1=first&sub1=second", ClickQuery(sub1="first")),
        (b"sub1=&sub2", EMPTY_QUERY),
        (b"su%62=not-a-field", EMPTY_QUERY),
        (b"sub%31=encoded-key", ClickQuery(sub1="encoded-key")),
        (b"other=1&&=&sub4==x", ClickQuery(sub4="=x")),
    ],
)
def test_parse_click_query(query, expected):
    assert parse_click_query(query, MAX) == expected


def test_query_over_the_limit_is_ignored_whole():
    query = b"sub1=kept&pad=" + b"x" * MAX
    assert parse_click_query(query, MAX) == EMPTY_QUERY
    assert parse_click_query(query[:MAX], MAX).sub1 == "kept"


@pytest.mark.parametrize("raw", [b"\xff", b"\x00", b"x\x00y\xe9", bytes(range(1, 256))])
def test_bytes_that_are_not_clean_utf8_round_trip_through_the_encoded_form(raw):
    stored = decode_query_value(raw.replace(b"%", b"%25").replace(b"+", b"%2B"))
    assert stored.isascii()
    assert unquote_to_bytes(stored) == raw


def test_never_raises_on_garbage():
    for query in [b"&&&", b"=", b"%%%%", b"sub1=%%41", b"sub1=\x00", b"\xff=\xff", b"sub1=%e2%82"]:
        parse_click_query(query, MAX)
    assert parse_click_query(b"sub1=%%41", MAX).sub1 == "%A"
    assert parse_click_query(b"sub1=%e2%82", MAX).sub1 == "%E2%82"
