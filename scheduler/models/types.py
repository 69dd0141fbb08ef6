from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every engine.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value
    is stored as naive UTC and made aware again on the way out. Naive values
    are refused so local wall time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return utc_from_naive(value)
        return value.astimezone(UTC)


@functools.lru_cache(maxsize=65536)
def utc_from_naive(value: datetime) -> datetime:
    """A naive stored timestamp (UTC by construction, as SQLite keeps it) made aware.

    Cached: slot times repeat in every listing. Only naive values are cached:
    aware ones that differ only in ``fold`` compare equal and would collide.
    """
    return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
