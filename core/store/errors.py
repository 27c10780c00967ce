"""Which database errors are the data's fault.

A data error fails the same way every time the same rows are written, so retrying is
pointless: the caller isolates the offending input instead. Anything else (connection
lost, server shutting down, a missing table) may pass, so the caller retries and
keeps the input.
"""

from __future__ import annotations

import asyncpg

_DATA_ERRORS = (
    asyncpg.exceptions.DataError,  # class 22: bad uuid/inet text, value too long, NUL byte
    asyncpg.exceptions.IntegrityConstraintViolationError,  # class 23: not null, check
    asyncpg.exceptions.ProgramLimitExceededError,  # 54000: e.g. a value too big to index
)


def is_data_error(exc: BaseException) -> bool:
    return isinstance(exc, _DATA_ERRORS)
