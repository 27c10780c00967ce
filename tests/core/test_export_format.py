"""CSV and JSON Lines encoding, and the formula guard as Postgres runs it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from core.export_format import RowEncoder, csv_safe_sql

GUARD_CASES = [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("a=b", "a=b"), ("'quoted", "'quoted"), ("", ""), (None, None), (" =x", " =x"),
]


@pytest.mark.parametrize("value, expected", GUARD_CASES)
async def test_the_formula_guard(pool, value, expected):
    assert await pool.fetchval(f"select {csv_safe_sql('$1::text')}", value) == expected


def test_csv_quotes_and_round_trips():
    rows = [("a,b", 'say "hi"', "line\nbreak", None, -5), ("x", "", "é🙂", 0, 7)]
    encoder = RowEncoder("csv", ["c1", "c2", "c3", "c4", "c5"])
    body = encoder.header() + encoder.rows(rows[:1]) + encoder.rows(rows[1:])
    assert body.startswith(b"c1,c2,c3,c4,c5\r\n")
    parsed = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert parsed[1:] == [["a,b", 'say "hi"', "line\nbreak", "", "-5"], ["x", "", "é🙂", "0", "7"]]


def test_jsonl_one_object_per_line():
    encoder = RowEncoder("jsonl", ["id", "flags", "meta", "n"])
    body = encoder.header() + encoder.rows([("1", ["a"], {"k": "v"}, None), ("2", [], None, -3)])
    assert [json.loads(line) for line in body.decode().splitlines()] == [
        {"id": "1", "flags": ["a"], "meta": {"k": "v"}, "n": None}, {"id": "2", "flags": [], "meta": None, "n": -3},
    ]
    assert body.endswith(b"\n")
