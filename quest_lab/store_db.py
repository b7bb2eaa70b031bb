"""Database plumbing under `quest_lab.store`: engines, errors, and the schema (owned by Alembic).

- **URLs**: any SQLAlchemy URL.  `postgresql://` uses psycopg 3 (`postgresql+psycopg`); a PostgreSQL
  connection attempt times out after `CONNECT_TIMEOUT_S` unless the URL says otherwise.  Every message
  shows the URL through `quest_lab.safe_text.display_url` (password hidden).
- **SQLite**: WAL journal (set by the first write), a 30 s busy timeout, no connection pool, and write
  transactions opened with `BEGIN IMMEDIATE`
  (a deferred transaction that reads, then writes, fails at once with SQLITE_BUSY when another process
  committed in between; IMMEDIATE waits for the write lock instead).
- **Errors**: `db_errors(...)` turns any SQLAlchemy/driver error into a one-line `StoreError`.
- **Schema**: the migrations in `quest_lab/migrations/versions/` own the tables.  A new database is
  created at the head revision on first write; an older one is refused with the command that upgrades
  it (`quest-lab db upgrade --store URL`); creating and upgrading hold a lock (SQLite: the write lock;
  PostgreSQL: an advisory lock), so concurrent drivers never race on the DDL.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool, StaticPool

from quest_lab.safe_text import display_url, password_of, scrub

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
BASELINE_REVISION = "0001_baseline"  # the layout of stores written before Alembic (schema_version 1)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x5155_4553_544C_4142 & 0x7FFF_FFFF_FFFF_FFFF  # "QUESTLAB": one advisory lock for DDL
WRITE = {"quest_lab_write": True}  # execution option: this transaction will write (SQLite: IMMEDIATE)


class StoreError(RuntimeError):
    """The store URL or the database it points at cannot be used.  str() is one line, no password."""


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        raise StoreError(f"store URL {display_url(url)!r} is not a valid SQLAlchemy URL "
                         "(e.g. sqlite:///results.db, postgresql://user@host/db)") from None
    return parsed


def first_line(exc: BaseException, url: URL) -> str:
    """A driver error as one line, without the URL's password."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return scrub(lines[0] if lines else type(orig).__name__, password_of(url))[:300]


@contextmanager
def db_errors(action: str, url: URL) -> Iterator[None]:
    """Any database error inside becomes `StoreError("cannot <action> store <url>: <first line>")`."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, ImportError, OSError) as exc:
        raise StoreError(f"cannot {action} store {display_url(url)}: {first_line(exc, url)}") from None


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by `_sqlite_on_begin`, not by pysqlite
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_wal(path: Path) -> None:
    """Switch a SQLite file to WAL (persistent in the file; readers never do it: it rewrites the header)."""
    import sqlite3

    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("quest_lab_write") else "BEGIN")


def make_engine(url: URL) -> Engine:
    kwargs: dict[str, Any] = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        else:  # no pooled connections: an idle process holds no lock and leaves no -wal/-shm files behind
            kwargs = {"poolclass": NullPool, "connect_args": {"timeout": 30}}
    elif backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    driver_url = url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url
    with db_errors("open", url):  # bare postgresql:// means psycopg 3 (SQLAlchemy 2.0 would pick psycopg2)
        engine = create_engine(driver_url, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


# -- schema (Alembic) --------------------------------------------------------------------------------
def _alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    cfg = Config()  # no alembic.ini: everything is set here
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The store's revision: from alembic_version; BASELINE_REVISION for a pre-Alembic store (tables,
    no alembic_version); None for an empty database."""
    insp = inspect(conn)
    if insp.has_table("alembic_version"):
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if insp.has_table("runs"):
        return BASELINE_REVISION
    return None


def _lock(conn: Connection) -> None:
    """Serialise schema changes between processes (SQLite already holds the write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def check_revision(rev: str | None, url: URL) -> None:
    """Raise StoreError naming what to run when the store's layout is not this code's."""
    head = head_revision()
    if rev is None or rev == head:
        return
    shown = display_url(url)
    if rev not in known_revisions():
        raise StoreError(f"store {shown} has schema revision {rev!r}, written by a newer quest-lab "
                         f"(this one knows up to {head!r}); upgrade quest-lab")
    raise StoreError(f"store {shown} has schema revision {rev!r} but this quest-lab needs {head!r}; "
                     f"back it up, then run `quest-lab db upgrade --store {shown}`")


def _upgrade_locked(conn: Connection) -> tuple[str | None, str]:
    from alembic import command

    _lock(conn)
    before = current_revision(conn)
    head = head_revision()
    if before == head:
        return before, head
    if before is not None and before not in known_revisions():
        check_revision(before, conn.engine.url)
    cfg = _alembic_config(conn)
    if before == BASELINE_REVISION and not inspect(conn).has_table("alembic_version"):
        command.stamp(cfg, BASELINE_REVISION)  # a pre-Alembic store: its tables are the baseline
    command.upgrade(cfg, "head")
    return before, head


def create_or_check(engine: Engine, url: URL) -> None:
    """First write: create an empty database at head; refuse an old or newer layout (one line)."""
    with db_errors("write", url):
        with engine.connect() as conn:
            rev = current_revision(conn)
            conn.rollback()
        if rev is None:
            with engine.connect().execution_options(**WRITE) as conn, conn.begin():
                rev = current_revision(conn)
                if rev is None:
                    _lock(conn)
                    rev = current_revision(conn)
                if rev is None:
                    _upgrade_locked(conn)
                    log.info("created store %s at schema revision %s", display_url(url), head_revision())
                    return
    check_revision(rev, url)


def upgrade(engine: Engine, url: URL) -> tuple[str | None, str]:
    """Bring the store to the head revision (creating it when empty); returns (before, after)."""
    with db_errors("upgrade", url):
        with engine.connect().execution_options(**WRITE) as conn, conn.begin():
            return _upgrade_locked(conn)


def read_revision(engine: Engine, url: URL) -> str | None:
    with db_errors("read", url), engine.connect() as conn:
        return current_revision(conn)


# -- writes shared by the store ------------------------------------------------------------------------
def chunks(ids: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Bounded IN (...) lists and executemany batches (SQLite's host-parameter limit)."""
    return (ids[i:i + size] for i in range(0, len(ids), size))


def insert_ignore(s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT rows, skipping primary keys that exist (also those a concurrent writer just added)."""
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # other databases: skip what is visible now (a concurrent insert may still conflict)
        keys = [c.name for c in table.primary_key.columns]
        have = {tuple(r) for r in s.execute(select(*(table.c[k] for k in keys)))}
        rows = [r for r in rows if tuple(r[k] for k in keys) not in have]
        for chunk in chunks(rows):
            s.execute(table.insert(), list(chunk))
        return
    for chunk in chunks(rows):
        s.execute(insert(table).on_conflict_do_nothing(), list(chunk))
