"""procrastinate's own tables in the digest's PostgreSQL database (``run.queue``), made and
brought up to date by ``digest db upgrade`` (and by a queued run), so that an operator never
runs procrastinate's command line.

Which of procrastinate's migrations the tables have is kept in the row ``queue.schema`` of
``meta``: the name of the newest migration file the installed procrastinate ships when the
schema was applied. An upgrade applies the missing ones in order (procrastinate's own
advice); tables made before the row existed are taken as the installed version's. One
process at a time applies (a transaction-scoped advisory lock); each upgrade is one
transaction, so a failure leaves the tables as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from procrastinate.schema import SchemaManager

from digest.errors import StateError
from digest.run.queue_jobs import conninfo

#: The row of ``meta`` naming the newest procrastinate migration the tables have.
VERSION_KEY = "queue.schema"
_SCHEMA_LOCK = 0x64696775  # pg_advisory_xact_lock key: one process applies the schema
_HINT = "run `digest db upgrade` (with run.queue = true) once against this database"


def migrations() -> list[Path]:
    """procrastinate's migration files, oldest first."""
    folder = Path(SchemaManager.get_migrations_path())
    return sorted(folder.glob("*.sql"), key=lambda p: p.name)


def newest() -> str:
    """The name (without ``.sql``) of the newest migration the installed procrastinate has."""
    return migrations()[-1].stem


@dataclass(frozen=True)
class SchemaState:
    """What ``digest db upgrade`` did: the version the tables are at, and what it applied
    (``made``: the whole schema; ``applied``: migration names; neither: nothing to do)."""

    version: str
    made: bool = False
    applied: tuple[str, ...] = ()

    def line(self) -> str:
        """``queue: ...``, the line ``digest db upgrade`` prints."""
        if self.made:
            return f"queue: procrastinate's tables made ({self.version})"
        if self.applied:
            return f"queue: {len(self.applied)} procrastinate migration(s) applied ({self.version})"
        return f"queue: procrastinate's tables up to date ({self.version})"


def upgrade_schema(database: str) -> SchemaState:
    """Make procrastinate's tables, or apply the migrations they miss; idempotent. Raises
    :class:`StateError` when the database refuses."""
    try:
        return _upgrade(database)
    except psycopg.Error as exc:
        raise StateError(f"cannot apply procrastinate's schema: {exc}", hint=_HINT) from exc


def _upgrade(database: str) -> SchemaState:
    target = newest()
    with psycopg.connect(conninfo(database), connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if not _has_tables(conn):
            conn.execute(SchemaManager.get_schema())
            _record(conn, target)
            return SchemaState(target, made=True)
        found = _recorded(conn)
        if found is None:  # made before the version was recorded: the installed one's
            _record(conn, target)
            return SchemaState(target)
        missing = [p for p in migrations() if p.stem > found]
        for path in missing:
            conn.execute(path.read_text(encoding="utf-8"))
        if missing:
            _record(conn, target)
        return SchemaState(target, applied=tuple(p.stem for p in missing))


def check_schema(database: str) -> None:
    """Raise :class:`StateError` (naming the command to run) unless procrastinate's tables
    exist and have every migration the installed procrastinate ships."""
    try:
        with psycopg.connect(conninfo(database), connect_timeout=10) as conn:
            if not _has_tables(conn):
                raise StateError("the database has no task queue tables yet", hint=_HINT)
            found = _recorded(conn)
    except psycopg.Error as exc:
        raise StateError(f"cannot read the queue's tables: {exc}") from exc
    if found is not None and found < newest():
        raise StateError(
            f"the queue's tables are at procrastinate migration {found}, older than {newest()}",
            hint=_HINT,
        )


def _has_tables(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _recorded(conn: psycopg.Connection[tuple[object, ...]]) -> str | None:
    if not _has_meta(conn):
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = %s", (VERSION_KEY,)).fetchone()
    return str(row[0]) if row else None


def _has_meta(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _record(conn: psycopg.Connection[tuple[object, ...]], version: str) -> None:
    if not _has_meta(conn):  # the digest's own tables come first (Alembic); none yet
        return
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (%s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (VERSION_KEY, version),
    )
