"""Engine settings per database kind."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
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
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_pre_ping": pre_ping,
        "pool_recycle": 3600,
    }
    if backend == "postgresql":
        # Timestamps come back in UTC whatever the server's zone: an instant in
        # the repeated autumn hour is then never confused with its twin.
        options["connect_args"] = {"options": "-c timezone=UTC"}
    return options


def sqlite_file_of(engine: Engine) -> str | None:
    """The database file of a SQLite engine (also for ``file:`` URIs), None for memory or others."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if engine.url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        path, _, query = database.removeprefix("file:").partition("?")
        return None if "mode=memory" in query or not path else path
    return None if database in ("", ":memory:") else database


@contextmanager
def serialized_writes() -> Iterator[None]:
    """Around a write transaction: on a SQLite file, wait for the other writers in line.

    SQLite lets one writer in at a time and makes the others retry with sleeps
    that grow to 100 ms, which gives long, unfair waits under load. Queueing
    on an flock(2) of a file beside the database instead wakes the next
    writer as soon as the last one is done, across threads and processes.
    PostgreSQL needs none of this: its row locks queue writers already.
    """
    path = sqlite_file_of(db.engine)
    try:
        fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600) if path else None
    except OSError:
        fd = None  # a read-only folder: SQLite's own locking still keeps writes safe
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# Namespaces of advisory locks, so that two kinds of lock on one name never wait on each other.
LOCK_BOOKINGS_OF_PHONE = 1
LOCK_TEXTS_TO_PHONE = 2


def lock_for_transaction(namespace: int, name: str) -> None:
    """Hold a lock on ``name`` until the current transaction ends (PostgreSQL advisory lock).

    For rules that count rows before adding one ("at most N per phone"): row
    locks cannot guard rows that do not exist yet. On SQLite, writers already
    run one at a time under ``serialized_writes``.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(name.encode()).digest()
    key = int.from_bytes(digest[:4], "big", signed=True)
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, :key)"), {"namespace": namespace, "key": key}
    )
