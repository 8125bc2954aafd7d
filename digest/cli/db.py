"""``digest db``: the database's schema revision, and bringing it to the newest."""

from __future__ import annotations

import click
from sqlalchemy.engine import Engine

from digest.cli.shared import State, guard
from digest.store import migrate
from digest.store.schema import open_engine


@click.group()
def db() -> None:
    """The database's schema (every command also upgrades a database that is behind)."""


@db.command()
@click.pass_obj
def upgrade(state: State) -> None:
    """Bring the database to the newest schema revision; print where it is."""
    engine = _engine(state)
    try:
        revision = guard(lambda: migrate.upgrade(engine))
    finally:
        engine.dispose()
    click.echo(_describe(revision))


@db.command()
@click.pass_obj
def current(state: State) -> None:
    """Print the database's schema revision and whether it is the newest (changes nothing)."""
    engine = _engine(state)
    try:
        revision = guard(lambda: migrate.current(engine))
        if revision is not None:
            guard(lambda: migrate.check_known(engine, revision))
    finally:
        engine.dispose()
    click.echo(_describe(revision))


def _engine(state: State) -> Engine:
    cfg = state.config()
    return guard(lambda: open_engine(cfg.database))


def _describe(revision: str | None) -> str:
    head = migrate.head()
    if revision == head:
        return f"{revision} (head)"
    return f"{revision or 'none'} (behind: head is {head}; run `digest db upgrade`)"
