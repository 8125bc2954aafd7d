"""procrastinate's tables (``run.queue``) are made and kept up to date by ``digest db
upgrade``, idempotently; ``digest worker`` refuses a database without them, or with older
ones, naming the command to run. Real PostgreSQL (a schema of the test's own)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from digest.cli import cli
from digest.run.queue_jobs import conninfo
from digest.run.queue_schema import VERSION_KEY, newest, upgrade_schema
from digest.store import Store
from tests.test_queue import pg_url  # noqa: F401  (the fixture)


def _config(tmp_path: Path, database: str, queue: bool = True) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'database = "{database}"\n[source]\nkind = "file"\npath = "listings"\n'
        f"[run]\nqueue = {'true' if queue else 'false'}\n",
        "utf-8",
    )
    return path


def _digest(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _tables(database: str) -> bool:
    with psycopg.connect(conninfo(database)) as conn:
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    return bool(row and row[0])


@pytest.mark.postgres
@pytest.mark.slow
def test_db_upgrade_makes_the_queue_tables_once_and_the_worker_refuses_without_them(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    config = _config(tmp_path, pg_url)
    code, out = _digest(config, "worker", "--once")
    assert code != 0 and "digest db upgrade" in out and "queue" in out, out
    assert not _tables(pg_url)  # a worker never changes the schema

    code, out = _digest(config, "db", "upgrade")
    assert code == 0, out
    assert f"queue: procrastinate's tables made ({newest()})" in out, out
    assert _tables(pg_url)
    code, out = _digest(config, "db", "upgrade")  # again: nothing to do
    assert code == 0 and f"queue: procrastinate's tables up to date ({newest()})" in out, out
    with Store(pg_url) as store:
        assert store.run_log.get_meta(VERSION_KEY) == newest()

    code, out = _digest(config, "worker", "--once")  # an empty queue: it ends at once
    assert code == 0, out


@pytest.mark.postgres
def test_tables_older_than_the_installed_procrastinate_are_refused_by_the_worker(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    Store(pg_url).close()
    upgrade_schema(pg_url)
    with Store(pg_url) as store:
        store.run_log.swap_meta(VERSION_KEY, newest(), "03.00.00_01_pre_cancel_notification")
    code, out = _digest(_config(tmp_path, pg_url), "worker", "--once")
    assert code != 0, out
    assert "older than" in out and "digest db upgrade" in out, out


@pytest.mark.postgres
def test_tables_made_before_the_version_was_kept_are_taken_as_current(pg_url: str) -> None:  # noqa: F811
    Store(pg_url).close()
    with psycopg.connect(conninfo(pg_url)) as conn:  # as procrastinate's own CLI makes them
        from procrastinate.schema import SchemaManager

        conn.execute(SchemaManager.get_schema())
    state = upgrade_schema(pg_url)
    assert not state.made and not state.applied and state.version == newest()
    with Store(pg_url) as store:
        assert store.run_log.get_meta(VERSION_KEY) == newest()


#: The newest migration procrastinate 3.0.0 shipped: the oldest tables ``procrastinate>=3``
#: (the pin in pyproject.toml) can have made.
OLDEST_3X = "03.00.00_50_post_cancel_notification"


def _shape(database: str) -> dict[str, list[tuple[str, ...]]]:
    """procrastinate's objects in the test's schema, with their definitions: columns,
    functions, indexes, triggers, enums and constraints (the schema's name taken out)."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name LIKE 'procrastinate%%'",
        "functions": "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p"
        " WHERE p.pronamespace = current_schema()::regnamespace"
        " AND p.proname LIKE 'procrastinate%%'",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%%'",
        "triggers": "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
        " JOIN pg_class r ON r.oid = t.tgrelid"
        " WHERE r.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal"
        " AND r.relname LIKE 'procrastinate%%'",
        "enums": "SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)"
        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid"
        " WHERE t.typnamespace = current_schema()::regnamespace GROUP BY t.typname",
        "constraints": "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " JOIN pg_class r ON r.oid = c.conrelid"
        " WHERE c.connamespace = current_schema()::regnamespace"
        " AND r.relname LIKE 'procrastinate%%'",
    }
    with psycopg.connect(conninfo(database)) as conn:
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        return {
            name: sorted(
                tuple(str(v).replace(f"{schema}.", "<schema>.") for v in row)
                for row in conn.execute(query).fetchall()
            )
            for name, query in queries.items()
        }


@pytest.mark.postgres
def test_tables_of_procrastinate_3_0_are_migrated_to_the_installed_version(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    """Tables as procrastinate 3.0.0 left them (its migrations from the first, each
    committed as its own CLI applies them) are brought by `digest db upgrade` to exactly
    what a fresh schema of the installed version is, and a worker then takes work."""
    from digest.run.queue_schema import migrations

    Store(pg_url).close()
    with psycopg.connect(conninfo(pg_url)) as conn:
        for path in migrations():
            if path.stem > OLDEST_3X:
                break
            conn.execute(path.read_text(encoding="utf-8"))
            conn.commit()
    with Store(pg_url) as store:
        assert store.run_log.swap_meta(VERSION_KEY, None, OLDEST_3X)
    config = _config(tmp_path, pg_url)
    code, out = _digest(config, "worker", "--once")
    assert code != 0 and f"at procrastinate migration {OLDEST_3X}, older than" in out, out

    missing = [p.stem for p in migrations() if p.stem > OLDEST_3X]
    assert missing  # the installed procrastinate is newer than 3.0.0
    code, out = _digest(config, "db", "upgrade")
    assert code == 0, out
    assert f"queue: {len(missing)} procrastinate migration(s) applied ({newest()})" in out, out
    migrated = _shape(pg_url)
    beside = pg_url.rsplit("%3D", 1)[1] + "_fresh"  # a fresh schema beside, to compare
    with psycopg.connect(conninfo(pg_url)) as conn:
        from procrastinate.schema import SchemaManager

        conn.execute(f"CREATE SCHEMA {beside}")
        conn.execute(f"SET search_path TO {beside}")
        conn.execute(SchemaManager.get_schema())
        conn.commit()
    try:
        fresh = _shape(pg_url.replace("search_path%3D", f"search_path%3D{beside}%2C", 1))
    finally:
        with psycopg.connect(conninfo(pg_url)) as conn:
            conn.execute(f"DROP SCHEMA {beside} CASCADE")
            conn.commit()
    assert migrated == fresh
    assert all(migrated.values())
    code, out = _digest(config, "worker", "--once")  # an empty queue: it ends at once
    assert code == 0, out


@pytest.mark.postgres
def test_db_upgrade_leaves_the_queue_alone_when_it_is_off(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    code, out = _digest(_config(tmp_path, pg_url, queue=False), "db", "upgrade")
    assert code == 0 and "queue:" not in out, out
    assert not _tables(pg_url)
