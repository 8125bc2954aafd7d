"""Alembic owns the schema: every revision goes up and down on SQLite and PostgreSQL, the
head is the tables the code uses, and a database made before migrations (a real one, from
``tests/fixtures/legacy``) is recognised, stamped and upgraded with nothing lost or sent twice.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from digest.cli import cli
from digest.errors import StateError
from digest.store import Store, metadata, migrate, open_engine
from tests.fixtures.legacy.make_legacy_db import LISTINGS
from tests.support.listings import write_days
from tests.support.smtpd import SmtpServer
from tests.test_pipeline import D1, D2, config, papers_to, run_day

LEGACY = Path(__file__).parent / "fixtures" / "legacy"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database with nothing in it, not even Alembic's table."""
    engine = open_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()  # a SQLite file may be written by sqlite3 next
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate finds between the database and ``schema.metadata``."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def revisions() -> list[str]:
    """Every revision, oldest first."""
    scripts = migrate._scripts()
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def test_the_head_constant_is_the_newest_revision() -> None:
    assert migrate.head() == migrate.HEAD == revisions()[-1]
    assert revisions()[0] == migrate.BASELINE


def test_every_revision_goes_up_and_down(engine: Engine) -> None:
    assert migrate.current(engine) is None
    previous = "base"
    for revision in revisions():
        assert migrate.upgrade(engine, revision) == revision
        assert migrate.downgrade(engine, previous) == (None if previous == "base" else previous)
        assert migrate.upgrade(engine, revision) == revision
        previous = revision
    assert migrate.current(engine) == migrate.HEAD
    assert differences(engine) == []
    assert migrate.downgrade(engine, "base") is None
    assert tables(engine) == {"alembic_version"}


def test_a_new_database_is_made_at_head_with_the_schema_version_old_code_checks(
    engine: Engine,
) -> None:
    assert migrate.is_behind(engine)
    migrate.upgrade_if_behind(engine)
    assert not migrate.is_behind(engine)
    assert migrate.current(engine) == migrate.HEAD
    assert differences(engine) == []
    with Store(str(engine.url.render_as_string(hide_password=False))) as store:
        assert store.run_log.get_meta("schema_version") == str(migrate.LEGACY_VERSION)


def test_an_up_to_date_database_costs_one_query(engine: Engine) -> None:
    migrate.upgrade(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", count)
    migrate.upgrade_if_behind(engine)
    sa.event.remove(engine, "before_cursor_execute", count)
    assert statements == ["SELECT version_num FROM alembic_version"]


def test_a_database_from_a_newer_paper_digest_is_refused_with_a_hint(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    with pytest.raises(StateError, match="revision f00dfeed") as caught:
        migrate.upgrade_if_behind(engine)
    assert caught.value.hint and "upgrade paper-digest" in caught.value.hint


def test_processes_opening_a_new_database_at_once_make_it_once(engine: Engine, db_url: str) -> None:
    """Each waits for the schema lock, then finds the work done (threads stand in for
    processes: each Store has its own engine and connections)."""
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(db_url).close()
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert migrate.current(engine) == migrate.HEAD
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM meta").scalar() == 1


# -- a database made before migrations -----------------------------------------------------


def load_legacy(db_url: str, tmp_path: Path) -> None:
    """Put ``today.sql`` (see ``make_legacy_db.py``) in the empty database at ``db_url``.

    SQLite runs the dump as it is. PostgreSQL cannot read SQLite's dump, so it gets the
    baseline's tables without Alembic's table (what the old code made: the baseline is
    checked against it below) and the dump's rows.
    """
    dump = (LEGACY / "today.sql").read_text("utf-8")
    if db_url.startswith("sqlite"):
        with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
            db.executescript(dump)
        return
    copy = tmp_path / "legacy.db"
    with closing(sqlite3.connect(copy)) as db:
        db.executescript(dump)
    engine = open_engine(db_url)
    migrate.upgrade(engine, migrate.BASELINE)
    target = sa.MetaData()
    target.reflect(engine)
    with closing(sqlite3.connect(copy)) as db, engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("DELETE FROM meta")
        for table in target.sorted_tables:
            if table.name == "alembic_version":
                continue
            cursor = db.execute(f'SELECT * FROM "{table.name}"')
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor]
            if rows:
                conn.execute(sa.insert(table), [_typed(table, row) for row in rows])
        for name in ("subscribers", "runs"):  # rows copied with their ids: move the counters on
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), MAX(id)) FROM {name}"
            )
    engine.dispose()


def _typed(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """SQLite's text and integers as the values PostgreSQL's columns take."""
    out = {}
    for name, value in row.items():
        kind = table.c[name].type
        if value is not None and isinstance(kind, sa.Boolean):
            value = bool(value)
        elif value is not None and isinstance(kind, sa.DateTime):
            value = datetime.fromisoformat(value)
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif value is not None and isinstance(kind, sa.Date):
            value = date.fromisoformat(value)
        out[name] = value
    return out


def shape(engine: Engine) -> dict[str, Any]:
    """Every table's columns, keys, indexes and constraints, as the database reports them."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        return {name: _table_shape(inspector, name) for name in sorted(inspector.get_table_names())}


def _table_shape(inspector: Any, name: str) -> tuple[Any, ...]:
    columns = inspector.get_columns(name)
    foreign = inspector.get_foreign_keys(name)
    return (
        [(c["name"], str(c["type"]), c["nullable"], c["default"]) for c in columns],
        inspector.get_pk_constraint(name)["constrained_columns"],
        sorted((f["constrained_columns"], f["referred_table"]) for f in foreign),
        sorted((i["name"], i["column_names"], i["unique"]) for i in inspector.get_indexes(name)),
        sorted(u["column_names"] for u in inspector.get_unique_constraints(name)),
    )


def test_the_baseline_is_the_layout_the_old_code_made(tmp_path: Path) -> None:
    old = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    load_legacy(str(old.url), tmp_path)
    new = open_engine(f"sqlite:///{tmp_path / 'new.db'}")
    migrate.upgrade(new, migrate.BASELINE)
    assert migrate.current(new) == migrate.BASELINE
    assert shape(new) == {**shape(old), "alembic_version": shape(new)["alembic_version"]}
    old.dispose()
    new.dispose()


def test_a_database_made_before_migrations_is_stamped_and_upgraded(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    load_legacy(db_url, tmp_path)
    assert migrate.current(engine) is None and migrate.is_behind(engine)
    with Store(db_url) as store:
        assert migrate.current(engine) == migrate.HEAD
        assert differences(engine) == []
        assert [s.email for s in store.members.subscribers()] == [
            "ada@example.org",
            "bob@example.org",
            "cy@example.org",
        ]
        assert store.outbox.delivery_counts() == {"sent": 2, "pending": 2}
        assert len(store.outbox.pending()) == 2
        assert store.run_log.get_meta("secret")
        assert store.run_log.get_meta("schema_version") == str(migrate.LEGACY_VERSION)


def test_an_old_database_of_a_newer_schema_version_is_refused(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    load_legacy(db_url, tmp_path)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="schema version 4, newer"):
        migrate.upgrade_if_behind(engine)
    assert migrate.current(engine) is None  # nothing changed


async def test_a_day_after_the_upgrade_sends_nothing_twice(
    engine: Engine,
    db_url: str,
    tmp_path: Path,
    smtp_server: Callable[..., SmtpServer],
) -> None:
    load_legacy(db_url, tmp_path)
    server = smtp_server()
    site = config(tmp_path, db_url, write_days(tmp_path / "listings", LISTINGS), server)
    # the two digests left pending on 2026-11-17 go out, once each, with the one new paper
    assert await run_day(site, D2) == (2, 0, 0, 2)
    assert await run_day(site, D2) == (0, 0, 0, 0)
    assert await run_day(site, D1) == (0, 0, 0, 0)  # sent before the upgrade
    assert papers_to(server, "ada@example.org") == papers_to(server, "bob@example.org")
    assert papers_to(server, "ada@example.org") == ["2511.00003"]
    assert len(server.messages) == 2


# -- the command -----------------------------------------------------------------------------


def test_digest_db_upgrade_and_current(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'database = "{db_url}"\n', "utf-8")

    def digest(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(config), "db", *args])

    before = digest("current")
    assert before.exit_code == 0, before.output
    assert before.output == f"none (behind: head is {migrate.HEAD}; run `digest db upgrade`)\n"
    assert tables(engine) <= {"alembic_version"}  # looking changes nothing
    upgraded = digest("upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output == f"{migrate.HEAD} (head)\n"
    assert digest("current").output == f"{migrate.HEAD} (head)\n"
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    newer = digest("upgrade")
    assert newer.exit_code == 1
    assert "revision f00dfeed" in newer.output and "hint: upgrade paper-digest" in newer.output
    assert "Traceback" not in newer.output


def test_a_store_whose_upgrade_fails_leaves_no_connection_open(engine: Engine, db_url: str) -> None:
    """A failed open (here: a revision this code does not know) closes what it opened; a
    pooled connection left to the garbage collector warned in whatever test ran next."""
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff'")
    engine.dispose()
    opened: list[Any] = []
    real_init = Store.__init__

    def spying_init(self: Store, url: str) -> None:
        try:
            real_init(self, url)
        finally:
            opened.append(self.engine)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "__init__", spying_init)
        with pytest.raises(StateError):
            Store(db_url)
    assert opened and opened[0].pool.checkedout() == 0
    assert opened[0].pool.checkedin() == 0, "the pool still holds a connection"


def test_downgrades_keep_the_subscribers_their_deliveries_refer_to(engine: Engine) -> None:
    """A revision that drops a column of ``subscribers`` must not copy the table: SQLite
    refuses to drop a table that ``deliveries`` rows refer to (seen on 0005, 0006, 0007)."""
    migrate.upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO subscribers (email, keywords, exclude, status, token, in_config,"
            " hard_bounces, created_at, updated_at) VALUES ('ada@example.org', '[]', '[]',"
            " 'active', 'tok-ada', false, 0, '2026-11-02 08:00:00', '2026-11-02 08:00:00')"
        )
        sub = conn.exec_driver_sql("SELECT id FROM subscribers").scalar()
        conn.exec_driver_sql(
            "INSERT INTO deliveries (id, subscriber_id, listing_date, message_id, status,"
            f" attempts, created_at) VALUES ('d1', {sub}, '2026-11-02', '<m1@example.org>',"
            " 'sent', 1, '2026-11-02 08:00:00')"
        )
    assert migrate.downgrade(engine, "0004") == "0004"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT email FROM subscribers").scalar() == "ada@example.org"
        assert conn.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 1
    assert migrate.upgrade(engine, "0007") == "0007"
