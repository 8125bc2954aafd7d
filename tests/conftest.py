"""Shared fixtures: a real SQLite file and, where a server answers, a real PostgreSQL schema."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from digest.store import Store

# No per-example deadline: on a shared 2-core machine (CI runs the suite on 2 xdist workers
# beside PostgreSQL) an example's time measures the load, not the code; a failing property
# still fails. Speed is measured by bench/, never by tests.
settings.register_profile("digest", deadline=None)
settings.load_profile("digest")

PG_HOST = os.environ.get("DIGEST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DIGEST_TEST_PG_PORT", "5432"))
PG_SCHEMA = f"digest_test_{os.getpid()}"


def _postgres_answers() -> str | None:
    """None when the test PostgreSQL server is usable, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError as exc:
        return f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} ({exc.strerror or exc})"
    try:
        with psycopg.connect(
            f"host={PG_HOST} port={PG_PORT} dbname=test user=postgres",
            connect_timeout=3,
            autocommit=True,
        ) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {PG_SCHEMA}")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} refused the test database: {exc}"
    return None


_PG_PROBLEM: str | bool | None = False


def _pg_problem() -> str | None:
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_answers()
    return _PG_PROBLEM  # type: ignore[return-value]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then PostgreSQL (skipped where none answers)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'digest.db'}"
        return
    problem = _pg_problem()
    if problem:
        pytest.skip(problem)
    import sqlalchemy as sa

    from digest.store import metadata

    url = (
        f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"
        f"?options=-csearch_path%3D{PG_SCHEMA}"
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # tables of older revisions a test downgraded to (revision 0008 dropped this one)
        conn.exec_driver_sql("DROP TABLE IF EXISTS delivery_papers")
        metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")  # the next Store migrates
    engine.dispose()
    yield url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _PG_PROBLEM is None:
        import psycopg

        with psycopg.connect(
            f"host={PG_HOST} port={PG_PORT} dbname=test user=postgres", autocommit=True
        ) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A :class:`~digest.store.Store` on :func:`db_url`'s fresh database, closed after."""
    from digest.store import Store

    s = Store(db_url)
    yield s
    s.close()


# A real aiosmtpd server for any test that asks for ``smtp_server`` (see tests/support/smtpd.py);
# ``digest serve`` as a subprocess and Debian's chromium, ``serve`` and ``chromium`` (see
# tests/support/browser.py).
from tests.support.browser import chromium, serve  # noqa: E402, F401
from tests.support.smtpd import smtp_server  # noqa: E402, F401
