"""Export files: rows as CSV or JSON Lines, encoded a chunk of rows at a time.

A row is a sequence of values in the order of the export's columns, as the export's
query selects them (``core.export_reads``): text, integers or ``None`` for CSV; for JSON
Lines also lists (``fraud_flags``) and objects (``metadata``).

CSV: a header row, then one line per row, ``\\r\\n`` line ends, fields quoted when they
hold a comma, a quote or a line break (RFC 4180, the ``csv`` module's excel dialect),
``None`` as an empty field. Formula injection is defused in the query, where it costs no
Python per cell: a free-text cell a spreadsheet would run as a formula (one starting
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is selected with a ``'``
before it (OWASP's advice for CSV injection; ``csv_safe_sql``), so an exported sub id
``=HYPERLINK(…)`` opens as text, not as a link. Numbers are never prefixed, so a
negative amount stays a number.

JSON Lines: one object per row (column -> value, ``None`` as ``null``), ``\\n`` after
each, UTF-8. No formula guard: JSON is read by programs, which get the value as sent.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Literal, Sequence

import msgspec

ExportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_SQL_CHARS = {"\t": "E'\\t'", "\r": "E'\\r'"}

_json = msgspec.json.Encoder()


def csv_safe_sql(expression: str) -> str:
    """SQL for ``expression`` (text) with ``'`` put before a value that starts like a formula."""
    starts = ", ".join(_SQL_CHARS.get(c, f"'{c}'") for c in FORMULA_STARTS)
    return f"case when left({expression}, 1) in ({starts}) then '''' || {expression} else {expression} end"


def csv_safe(value: Any) -> Any:
    """One CSV cell built in Python (small exports, e.g. stats): the same guard as ``csv_safe_sql``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class RowEncoder:
    """Encodes the rows of one export: ``header()`` once, then ``rows(chunk)`` per chunk."""

    def __init__(self, fmt: ExportFormat, columns: Sequence[str]):
        self.format = fmt
        self.columns = tuple(columns)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def header(self) -> bytes:
        if self.format != "csv":
            return b""
        return self._csv([self.columns])

    def rows(self, chunk: Sequence[Sequence[Any]]) -> bytes:
        if self.format == "jsonl":
            columns = self.columns
            return _json.encode_lines([dict(zip(columns, row)) for row in chunk])
        return self._csv(chunk)

    def _csv(self, rows: Sequence[Sequence[Any]]) -> bytes:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerows(rows)
        return self._buffer.getvalue().encode()
