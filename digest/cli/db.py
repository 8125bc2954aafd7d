"""``digest db``: the database's schema revision, and bringing it to the newest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.engine import Engine

from digest.cli.shared import State, guard
from digest.store import migrate, open_engine


@click.group()
def db() -> None:
    """The database's schema (every command also upgrades a database that is behind)."""


@db.command()
@click.pass_obj
def upgrade(state: State) -> None:
    """Bring the database to the newest schema revision; print where it is.

    With run.queue (PostgreSQL), procrastinate's tables of the task queue too: made, or
    brought to the installed procrastinate's migrations (procrastinate's own command line
    is never needed)."""
    with _database(state) as engine:
        revision = guard(lambda: migrate.upgrade(engine))
    click.echo(_describe(revision))
    cfg = state.config()
    if cfg.run.queue and not cfg.database.startswith("sqlite"):
        from digest.run.queue_schema import upgrade_schema  # procrastinate: optional extra

        click.echo(guard(lambda: upgrade_schema(cfg.database)).line())


@db.command()
@click.pass_obj
def current(state: State) -> None:
    """Print the database's schema revision and whether it is the newest (changes nothing)."""
    with _database(state) as engine:
        revision = guard(lambda: migrate.current(engine))
        if revision is not None:
            guard(lambda: migrate.check_known(engine, revision))
    click.echo(_describe(revision))


@contextmanager
def _database(state: State) -> Iterator[Engine]:
    """The configured database's engine, without the upgrade a Store does on opening."""
    cfg = state.config()
    engine = guard(lambda: open_engine(cfg.database))
    try:
        yield engine
    finally:
        engine.dispose()


def _describe(revision: str | None) -> str:
    head = migrate.head()
    if revision == head:
        return f"{revision} (head)"
    return f"{revision or 'none'} (behind: head is {head}; run `digest db upgrade`)"
