"""Bounded integer types shared by routes (path/query parameters) and request bodies.

Ids and stored integers are ``INTEGER`` columns: signed 32-bit on PostgreSQL (64-bit on
SQLite), so 2^31 - 1 is the largest value every supported database can hold. A larger number
in a URL or a body used to reach the driver and fail there (``OverflowError`` from SQLite,
"integer out of range" from PostgreSQL: a 500); these types refuse it during validation
instead (422), so every int-id route answers 404 or 422 and never 500. The API fuzzer
(tests/app/test_fuzz.py) found the 32-bit bound on PostgreSQL. The types carry only
``annotated_types`` constraints, so the same type works as a FastAPI path or query parameter
and as a pydantic field in a service schema.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import Strict

DB_INT_MAX = 2**31 - 1  # PostgreSQL INTEGER

# Path and query parameters: text on the wire, so parsed leniently ("12" → 12), then bounded.
DbId = Annotated[int, Ge(1), Le(DB_INT_MAX)]
# Inside a JSON body: a real JSON integer only (no true/false, no "12"), bounded the same way.
BodyId = Annotated[int, Strict(), Ge(1), Le(DB_INT_MAX)]
# Any other integer in a JSON body (scores, milliseconds, seeds): strict, within INTEGER.
BodyInt = Annotated[int, Strict(), Ge(-DB_INT_MAX - 1), Le(DB_INT_MAX)]

__all__ = ["DB_INT_MAX", "BodyId", "BodyInt", "DbId"]
