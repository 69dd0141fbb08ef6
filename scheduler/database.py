"""Engine settings per database kind, the unit of work that owns every write transaction,
outages (503, logged once), and locks for rules that count rows.

The rule for transactions: a door (a view, a command, a job, a webhook) opens
``unit_of_work()`` around what it changes; the operations it calls read, add
and flush, but never commit, roll back or begin. The unit commits when the
block ends and rolls everything back when it raises. Operations that must
undo part of their own work use a savepoint (``db.session.begin_nested()``)
or write so that there is nothing to undo (``INSERT ... ON CONFLICT DO
NOTHING``, see ``insert_unless_taken``), never a rollback of the caller's work.

Hot paths write with Core statements built once, on the session's connection
(so in its transaction), and make the ORM objects callers need with
``as_loaded``: no flush, no query.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import select
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import ColumnElement, Delete, Insert, Table, Update, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import Pool

from scheduler.extensions import db

log = logging.getLogger(__name__)
M = TypeVar("M")

# True inside a unit of work: its SQLite transaction then begins IMMEDIATE (see below).
_in_unit_of_work: ContextVar[bool] = ContextVar("in_unit_of_work", default=False)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """WAL lets readers run beside the one writer; the busy timeout (the driver's
    ``timeout``, DATABASE_LOCK_TIMEOUT_SECONDS) makes writers queue.

    The sqlite3 module's own transaction handling is turned off (it would not
    begin a transaction before SAVEPOINT, which breaks savepoints); SQLAlchemy
    begins each transaction itself, in ``_sqlite_begin``.
    """
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(connection: Connection) -> None:
    """Inside a unit of work, SQLite's write lock is taken when the transaction begins (a
    write can then never fail on a snapshot grown stale); reads outside run as single
    statements, as the sqlite3 module ran them."""
    if connection.dialect.name == "sqlite" and _in_unit_of_work.get():
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _hold_sqlite_write_lock(session: Session) -> None:
    """Make sure the session's SQLite connection is in a BEGIN IMMEDIATE transaction.

    A transaction the session began for reads outside a unit of work has no
    BEGIN at all on SQLite (see ``_sqlite_begin``); it is begun here.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def connection_is_dead(dbapi_connection: Any) -> bool:
    """Whether a pooled server connection was closed under us, without a round trip.

    An idle connection has nothing to read; after the server restarted (or
    ended the session) its socket holds the goodbye message or end-of-file.
    One poll(2) of the socket, with no wait, tells.
    """
    if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
        return True
    try:
        fd = dbapi_connection.fileno()
    except Exception:  # a driver that cannot tell, or a closed connection
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


@event.listens_for(Pool, "checkout")
def _replace_dead_connection(
    dbapi_connection: Any, connection_record: Any, connection_proxy: Any
) -> None:
    """A dead pooled connection is replaced before use (the pool retries the checkout),
    so the first requests after a database restart succeed instead of failing."""
    if not isinstance(dbapi_connection, sqlite3.Connection) and connection_is_dead(
        dbapi_connection
    ):
        raise DisconnectionError("the server closed this pooled connection")


class OutageWatch:
    """Logs a database outage once when it starts and once when it ends, however
    many requests fail in between.

    An unreachable server is back when any statement succeeds; a locked SQLite
    file still answers reads, so it is back when a write succeeds.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None
        self.locked = False

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
            self.locked = "locked" in str(error)
        log.error("database unavailable, answering 503 until it is back: %s", _first_line(error))

    def answered(self, statement: str) -> None:
        if self.since is None:  # the usual case: no lock, nothing to do
            return
        if self.locked and statement.lstrip()[:6].upper() in ("SELECT", "PRAGMA"):
            return
        with self._lock:
            since, self.since = self.since, None
        if since is not None:
            log.warning("database available again after %.0f s", time.monotonic() - since)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


outage = OutageWatch()


@event.listens_for(Engine, "after_cursor_execute")
def _database_answered(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    outage.answered(statement)


def engine_options(
    url: str,
    pool_size: int,
    max_overflow: int,
    pre_ping: bool = False,
    lock_timeout: float = 30.0,
    connect_timeout: int = 5,
) -> dict[str, Any]:
    """SQLAlchemy engine options for this URL (``postgresql://`` uses psycopg 3).

    Dead pooled connections are found without a round trip (see
    ``connection_is_dead``); pre-ping, one more round trip per request, stays optional.
    """
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # Past this wait for another writer's lock, a request answers 503.
        return {"connect_args": {"timeout": lock_timeout}}
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "pool_pre_ping": pre_ping,
        "pool_recycle": 3600,
    }
    if backend == "postgresql":
        # Timestamps come back in UTC whatever the server's zone: an instant in
        # the repeated autumn hour is then never confused with its twin.
        options["connect_args"] = {
            "options": "-c timezone=UTC",
            "connect_timeout": connect_timeout,
        }
    return options


def sqlite_file_of(engine: Engine) -> str | None:
    """The database file of a SQLite engine (also for ``file:`` URIs), None for memory or others."""
    if engine.dialect.name != "sqlite":
        return None
    return sqlite_file_of_url(str(engine.url))


def sqlite_file_of_url(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if parsed.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        path, _, query = database.removeprefix("file:").partition("?")
        return None if "mode=memory" in query or not path else path
    return None if database in ("", ":memory:") else database


def create_private_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does, and make an existing one so.

    SQLite gives its -wal and -shm files the mode of the database file, so
    those are private too. Patients' records are not for other local users.
    """
    path = sqlite_file_of_url(url)
    if not path:
        return
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
            if os.path.exists(name):
                os.chmod(name, 0o600)
    except OSError as exc:  # a read-only or foreign file: SQLite reports what matters
        log.warning("could not make %s private: %s", path, exc)


@contextmanager
def serialized_writes() -> Iterator[None]:
    """Around a write transaction: on a SQLite file, wait for the other writers in line,
    then hold SQLite's write lock for the whole transaction (the caller commits).

    SQLite lets one writer in at a time and makes the others retry with sleeps
    that grow to 100 ms, which gives long, unfair waits under load. Queueing
    on an flock(2) of a file beside the database instead wakes the next
    writer as soon as the last one is done, across threads and processes.
    PostgreSQL needs none of this: its row locks queue writers already.
    Prefer ``unit_of_work``, which also commits or rolls back.
    """
    if _in_unit_of_work.get():
        yield
        return
    session = db.session()
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.commit()  # nothing pending: this only ends the read transaction
    marker = _in_unit_of_work.set(True)
    path = sqlite_file_of(db.engine)
    try:
        fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600) if path else None
    except OSError:
        fd = None  # a read-only folder: SQLite's own locking still keeps writes safe
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        _hold_sqlite_write_lock(session)
        yield
    finally:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        _in_unit_of_work.reset(marker)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One write transaction: commits when the block ends, rolls back if it raises.

    Changes the caller made before (added, not yet flushed) become part of it;
    a read-only transaction still open is ended first, so the writes start
    from a fresh snapshot. A unit opened inside another joins it.
    """
    session = db.session()
    if _in_unit_of_work.get():
        yield session
        return
    with serialized_writes():
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def rows_changed(
    statement: Update | Delete,
    synchronize_session: Literal[False, "auto", "evaluate", "fetch"] = False,
) -> int:
    """Run an UPDATE or DELETE in the session; how many rows it matched.

    Without synchronisation (the default) objects already loaded keep their old
    values: callers refresh what they read again. ``Session.execute`` is typed as
    returning a ``Result``; for these statements it is a ``CursorResult``, which
    has the count.
    """
    result = db.session.execute(
        statement, execution_options={"synchronize_session": synchronize_session}
    )
    return cast(CursorResult[Any], result).rowcount


# Namespaces of advisory locks, so that two kinds of lock on one name never wait on each other.
LOCK_BOOKINGS_OF_PHONE = 1
LOCK_TEXTS_TO_PHONE = 2
LOCK_OFFERS_OF_SLOT = 3
LOCK_EMAILS_TO_ADDRESS = 4


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


def connection() -> Connection:
    """The session's connection, in its transaction: for Core statements built once.

    Kept in the session's ``info`` until its transaction ends: asking the session
    again costs more than most statements of a booking.
    """
    session = db.session()
    conn: Connection | None = session.info.get(_CONNECTION)
    if conn is None or conn.closed:
        conn = session.info[_CONNECTION] = session.connection()
    return conn


_CONNECTION = "scheduler.connection"


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: Any) -> None:
    session.info.pop(_CONNECTION, None)


@functools.cache
def insert_unless_taken(table: Table, dialect: str, returning: ColumnElement[Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING <column>``: no row comes back when a
    unique value is taken already (on PostgreSQL, once the transaction holding it has
    committed), so the caller draws again or takes the row that is there."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing().returning(returning)


def table_of(model: type[Any]) -> Table:
    """A model's table, typed as one (the declarative ``__table__`` is typed as any clause)."""
    return cast(Table, model.__table__)


def as_loaded(model: type[M], values: Mapping[Any, Any], **related: Any) -> M:
    """The ORM object of a row this transaction has just written or read with Core.

    The session's own object if it holds that row already (see ``update_held``);
    otherwise a new one, as if loaded from ``values`` (columns missing there are
    loaded on first use). ``related`` sets many-to-one relationships to objects
    at hand (an appointment's slot and patient), as if loaded too. No query, no flush.
    """
    obj = update_held(model, values)
    if obj is None:
        # As the ORM builds what it loads: no constructor, whose every attribute set
        # records history that make_transient_to_detached would then throw away.
        obj = inspect(model).class_manager.new_instance()
        obj.__dict__.update(values)
        make_transient_to_detached(obj)
        db.session.add(obj)
    for name, value in related.items():
        set_committed_value(obj, name, value)
    return obj


def update_held(model: type[M], values: Mapping[Any, Any]) -> M | None:
    """The session's object of this row, if it holds one, brought up to date with
    ``values`` (but for attributes changed in memory and not flushed yet)."""
    session = db.session()
    held = session.identity_map.get(session.identity_key(model, values["id"]))
    if held is None:
        return None
    changed_in_memory = inspect(held).committed_state
    for name, value in values.items():
        if name not in changed_in_memory:
            set_committed_value(held, name, value)
    return held
