"""Engine settings per database kind."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from scheduler.extensions import db


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL lets readers run beside the one writer; the busy timeout makes writers queue."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def engine_options(
    url: str, pool_size: int, max_overflow: int, pre_ping: bool = False
) -> dict[str, Any]:
    """SQLAlchemy engine options for this URL (``postgresql://`` uses psycopg 3).

    Pre-ping costs a round trip per request; without it, the first request
    after a database restart fails and SQLAlchemy then drops the whole stale pool.
    """
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_pre_ping": pre_ping,
        "pool_recycle": 3600,
    }


@contextmanager
def serialized_writes() -> Iterator[None]:
    """Around a write transaction: on a SQLite file, wait for the other writers in line.

    SQLite lets one writer in at a time and makes the others retry with sleeps
    that grow to 100 ms, which gives long, unfair waits under load. Queueing
    on an flock(2) of a file beside the database instead wakes the next
    writer as soon as the last one is done, across threads and processes.
    PostgreSQL needs none of this: its row locks queue writers already.
    """
    engine = db.engine
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield
        return
    fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
