"""Alembic owns the schema: bring a database to the newest revision of ``migrations/``,
recognising one made before migrations existed, behind a check cheap enough for every open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from digest.errors import StateError
from digest.store.schema import begin, metadata, safe_url

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The newest revision in ``migrations/versions`` (a test checks they agree): comparing the
#: database's with it is all an up-to-date database costs, without loading Alembic.
HEAD = "0009"
#: The revision whose tables are those paper-digest made before migrations.
BASELINE = "0001"
#: The ``meta.schema_version`` of that layout; versions 1 and 2 lack what follows.
LEGACY_VERSION = 3
#: Columns versions 1 and 2 lack, by table, added with ALTER TABLE (version 1 also lacks the
#: ``runs`` table and the ``ix_subscribers_due`` index). Their definitions are those of
#: ``schema.metadata``: a revision that changes one of them must freeze it here first.
LEGACY_COLUMNS = {
    "subscribers": (
        "hard_bounces",
        "send_at",
        "timezone",
        "frequency",
        "weekday",
        "days",
        "next_send_at",
        "covered_until",
        "confirmed_at",
    ),
    "deliveries": ("claimed_by", "claimed_at"),
}
MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION_TABLE = "alembic_version"
_SELECT_VERSION = f"SELECT version_num FROM {_VERSION_TABLE}"
#: Two processes upgrading one PostgreSQL database at once take turns on this lock.
_PG_LOCK = 0x6469676573740001


def head() -> str:
    """The newest revision our migrations know (:data:`HEAD`, read from the revisions)."""
    return _scripts().get_current_head() or BASELINE


def current(engine: Engine) -> str | None:
    """The database's revision; None for a new database or one made before migrations.

    Raises :class:`StateError` when the database cannot be read.
    """
    with begin(engine) as conn:
        return _revision(conn)


def is_behind(engine: Engine) -> bool:
    """Whether the database needs :func:`upgrade`: one small query when it does not."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(_SELECT_VERSION).scalar() != HEAD
    except DBAPIError:  # no version table (or no database yet): the upgrade finds out
        return True


def upgrade_if_behind(engine: Engine) -> None:
    """What every command does on opening the database: :func:`upgrade` when it is behind."""
    if is_behind(engine):
        upgrade(engine)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to ``revision`` (a new one from nothing; one made before
    migrations is brought to the baseline's layout and stamped first); returns the
    revision it is at. Raises :class:`StateError` for a revision our code does not know
    (a database upgraded by a newer paper-digest) or a database that cannot be written.
    """
    from alembic import command

    with _locked(engine) as conn:
        found = _revision(conn)
        if found is None and sa.inspect(conn).has_table("meta"):
            _adopt(conn)
            command.stamp(_config(conn), BASELINE)
        elif found is None and revision == "head":
            return _create(conn)
        elif found is not None:
            check_known(engine, found)
        command.upgrade(_config(conn), revision)
        return _revision(conn)


def _create(conn: Connection) -> str | None:
    """A new database made at head in one step, as Alembic's documentation advises: the
    tables of ``schema.metadata`` (a test checks they are what the revisions make), the
    baseline's ``schema_version`` row, and the head revision stamped. Running every
    revision from nothing cost ~40 ms a database; this costs a few."""
    from alembic import command

    metadata.create_all(conn)
    meta = metadata.tables["meta"]
    conn.execute(sa.insert(meta).values(key="schema_version", value=str(LEGACY_VERSION)))
    command.stamp(_config(conn), "head")
    return _revision(conn)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Take the database back to ``revision`` ("base": no tables at all); returns where it is."""
    from alembic import command

    with _locked(engine) as conn:
        found = _revision(conn)
        if found is not None:
            check_known(engine, found)
        command.downgrade(_config(conn), revision)
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    found: str | None = conn.exec_driver_sql(_SELECT_VERSION).scalar()
    return found


def check_known(engine: Engine, found: str) -> None:
    """Raise :class:`StateError` unless our migrations know revision ``found`` (one a
    newer paper-digest made is not)."""
    from alembic.util import CommandError

    try:
        _scripts().get_revision(found)
    except CommandError as exc:
        raise StateError(
            f"database {safe_url(str(engine.url))} is at revision {found}, which this"
            " paper-digest does not know: a newer paper-digest upgraded it",
            hint="upgrade paper-digest (or point `database` at another database)",
        ) from exc


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the schema alone until it commits: a second process
    upgrading at the same time waits, then finds the work done."""
    with begin(engine) as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite begins transactions only before DML: this makes the DDL part of it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))
        yield conn


def _adopt(conn: Connection) -> None:
    """Bring a database made before migrations to the baseline's layout, as paper-digest
    did then: the tables, columns and index versions 1 and 2 lack."""
    meta = metadata.tables["meta"]
    version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    if version is not None and int(version) > LEGACY_VERSION:
        raise StateError(
            f"database {safe_url(str(conn.engine.url))} has schema version {version}, newer"
            f" than this paper-digest ({LEGACY_VERSION})",
            hint="upgrade paper-digest",
        )
    if version is not None and int(version) == LEGACY_VERSION:
        return
    metadata.tables["runs"].create(conn, checkfirst=True)
    _add_columns(conn)
    for index in metadata.tables["subscribers"].indexes:
        index.create(conn, checkfirst=True)
    if version is None:
        conn.execute(sa.insert(meta).values(key="schema_version", value=str(LEGACY_VERSION)))
    else:
        conn.execute(
            sa.update(meta).where(meta.c.key == "schema_version").values(value=str(LEGACY_VERSION))
        )


def _add_columns(conn: Connection) -> None:
    """ALTER TABLE for each column an older database lacks."""
    inspector = sa.inspect(conn)
    for name, added in LEGACY_COLUMNS.items():
        table = metadata.tables[name]
        present = {c["name"] for c in inspector.get_columns(name)}
        for column in (table.c[c] for c in added if c not in present):
            ddl = f"{column.name} {column.type.compile(dialect=conn.dialect)}"
            if column.server_default is not None:
                ddl += f" NOT NULL DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
            if conn.dialect.name == "postgresql":
                ddl = "IF NOT EXISTS " + ddl  # as before the schema lock: harmless
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")


def _config(conn: Connection | None = None) -> Config:
    """Alembic's configuration, built here (no alembic.ini for anyone to keep); the
    revisions run on ``conn``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@cache
def _scripts() -> ScriptDirectory:
    """The revisions of ``migrations/versions``, read once."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())
