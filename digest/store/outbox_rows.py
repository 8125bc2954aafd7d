"""The outbox's hot path, straight to the database driver: a day's digests, each carrying
its papers as a packed array of paper ids, as rows made before the transaction and written
in multi-row INSERTs, and the sent marks.

SQLAlchemy's per-row parameter processing and statement machinery cost more than the
statements themselves (100,000 digests a day).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from digest.store.schema import deliveries, papers


@dataclass(frozen=True)
class PlannedDelivery:
    """A digest to record as pending: its papers in display order, those past the cap last."""

    subscriber_id: int
    listing_date: date
    paper_keys: tuple[str, ...]
    shown: int  # how many of paper_keys are shown; the rest are "N more"
    id: str = ""
    message_id: str = ""


#: Rows per multi-row INSERT: one statement, one step of the database per this many rows.
INSERT_ROWS = 500

DELIVERY_COLUMNS = (
    "id",
    "subscriber_id",
    "listing_date",
    "message_id",
    "status",
    "attempts",
    "created_at",
    "claimed_by",
    "claimed_at",
    "papers",
    "shown",
)


def pack_ids(ids: Iterable[int]) -> bytes:
    """Paper ids as the ``deliveries.papers`` column holds them: unsigned 32-bit integers,
    little-endian, in order (4 bytes a paper, on every machine alike)."""
    packed = array("I", ids)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def unpack_ids(blob: bytes | str | None) -> array[int]:
    """The paper ids a ``deliveries.papers`` value holds (:func:`pack_ids` undone)."""
    ids = array("I")
    if blob:
        ids.frombytes(blob.encode() if isinstance(blob, str) else bytes(blob))
        if _BIG_ENDIAN:
            ids.byteswap()
    return ids


_BIG_ENDIAN = sys.byteorder == "big"


class DriverWrites:
    """The statements of :class:`Outbox`'s hot path, prepared once for ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self._insert_deliveries, self._bind_deliveries = driver_insert(
            engine, deliveries, DELIVERY_COLUMNS
        )
        mark = self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql_mark_sent = (
            f"UPDATE deliveries SET status = 'sent', sent_at = {mark}, error = NULL,"
            " attempts = attempts + 1, claimed_by = NULL, claimed_at = NULL WHERE id IN ({ids})"
        )
        self._sql_bounces_reset = (
            "UPDATE subscribers SET hard_bounces = 0 WHERE hard_bounces > 0 AND id IN"
            " (SELECT subscriber_id FROM deliveries WHERE id IN ({ids}))"
        )
        process = deliveries.c.sent_at.type.bind_processor(engine.dialect)
        self._bind_sent_at: Callable[[datetime], Any] = process or (lambda value: value)

    def rows(
        self,
        plans: Sequence[PlannedDelivery],
        created_at: datetime,
        claimed_by: int | None,
        ids: Mapping[str, int],
    ) -> list[tuple[Any, ...]]:
        """The rows of ``plans``' deliveries (bound as SQLAlchemy would), their papers packed
        by ``ids`` (paper key to ``papers.id``), made before the transaction: none of it
        holds the write lock."""
        return [
            self._bind_deliveries(delivery_tuple(p, created_at, claimed_by, ids)) for p in plans
        ]

    def insert(self, conn: Connection, delivery_rows: list[tuple[Any, ...]]) -> None:
        """Write rows made by :meth:`rows` in multi-row INSERTs."""
        self._insert_deliveries(conn, delivery_rows)

    def mark_sent(self, conn: Connection, delivery_ids: Sequence[str], when: datetime) -> None:
        """Deliveries sent at ``when``, their subscribers' run of hard bounces ended."""
        sent_at = self._bind_sent_at(when)
        # One statement each (not executemany: see driver_insert), 500 ids at most.
        for start in range(0, len(delivery_ids), INSERT_ROWS):
            part = tuple(delivery_ids[start : start + INSERT_ROWS])
            ids = ", ".join([self._mark] * len(part))
            conn.exec_driver_sql(self._sql_mark_sent.format(ids=ids), (sent_at, *part))
            conn.exec_driver_sql(self._sql_bounces_reset.format(ids=ids), part)


def driver_insert(
    engine: Engine, table: sa.Table, columns: Sequence[str]
) -> tuple[Callable[[Connection, list[tuple[Any, ...]]], None], Callable[..., tuple[Any, ...]]]:
    """``insert(conn, rows)`` straight to the driver, in multi-row statements of up to
    :data:`INSERT_ROWS` rows, and ``bind(row)`` converting one row's values as SQLAlchemy
    would (dates on SQLite, booleans...).

    Not ``executemany``: SQLite's driver steps each row apart, giving up and taking back
    Python's lock each time; while the event loop's thread composes messages, each take
    can wait for it, and the database's write lock is held all along (other workers' marks
    wait for it). One statement per 500 rows takes it twice.
    """
    dialect = engine.dialect
    procs = [table.c[name].type.bind_processor(dialect) for name in columns]

    def bind(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(p(v) if p else v for p, v in zip(procs, row, strict=True))

    if dialect.name == "postgresql":
        return _unnest_insert(dialect, table, columns), bind if any(procs) else _same
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    one = f"({', '.join([mark] * len(columns))})"
    full = head + ", ".join([one] * INSERT_ROWS)

    def insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            part = rows[start : start + INSERT_ROWS]
            sql = full if len(part) == INSERT_ROWS else head + ", ".join([one] * len(part))
            conn.exec_driver_sql(sql, tuple([value for row in part for value in row]))

    return insert, bind if any(procs) else _same


def _same(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row


def _unnest_insert(
    dialect: Any, table: sa.Table, columns: Sequence[str]
) -> Callable[[Connection, list[tuple[Any, ...]]], None]:
    """PostgreSQL's ``insert(conn, rows)``: one array a column, the rows made by ``unnest``
    on the server. A statement of one placeholder a value (5,500 for 500 digests) was
    parsed anew by psycopg each time (too long for its cache: a third of recording)."""
    casts = ", ".join(f"%s::{table.c[name].type.compile(dialect)}[]" for name in columns)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({casts})"

    def insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), INSERT_ROWS * 10):
            part = rows[start : start + INSERT_ROWS * 10]
            conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*part, strict=True)))

    return insert


def delivery_tuple(
    plan: PlannedDelivery, created_at: datetime, claimed_by: int | None, ids: Mapping[str, int]
) -> tuple[Any, ...]:
    """The ``deliveries`` row of ``plan`` in :data:`DELIVERY_COLUMNS` order."""
    return (
        plan.id,
        plan.subscriber_id,
        plan.listing_date,
        plan.message_id,
        "pending" if claimed_by is None else "sending",
        0,
        created_at,
        claimed_by,
        None if claimed_by is None else created_at,
        pack_ids(map(ids.__getitem__, plan.paper_keys)),
        plan.shown,
    )


#: The statuses whose digests hold their papers: a failed one released them.
HOLDING = ("pending", "sending", "sent")


def ids_of_keys(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    """``papers.id`` of each stored paper among ``keys``, by key."""
    found: dict[str, int] = {}
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        found.update(
            conn.execute(sa.select(papers.c.key, papers.c.id).where(papers.c.key.in_(part))).all()
        )
    return found


#: A stored paper as a digest being recorded needs it: its ``papers.id`` and when it was
#: first seen (UTC).
PaperRef = tuple[int, datetime]


def refs_of_keys(conn: Connection, keys: Iterable[str]) -> dict[str, PaperRef]:
    """The id and ``first_seen`` of each stored paper among ``keys``, by key: what
    :func:`ids_of_keys` and :func:`held_since` read, in one statement per 900 keys."""
    found: dict[str, PaperRef] = {}
    wanted = sorted(set(keys))
    p = papers.c
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        for key, paper_id, first in conn.execute(
            sa.select(p.key, p.id, p.first_seen).where(p.key.in_(part))
        ):
            found[key] = (paper_id, _utc(first))
    return found


def since_of(refs: Iterable[PaperRef]) -> datetime | None:
    """:func:`held_since` of the papers ``refs`` (read already)."""
    earliest = min((first for _, first in refs), default=None)
    return None if earliest is None else earliest - SEEN_SLACK


def keys_of_ids(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    """The key of each stored paper among ``ids``, by id (a pruned paper's id has none)."""
    found: dict[int, str] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        found.update(
            conn.execute(sa.select(papers.c.id, papers.c.key).where(papers.c.id.in_(part))).all()
        )
    return found


#: How much earlier than a paper's ``first_seen`` a digest carrying it may say it was
#: recorded: a run's ``created_at`` is its start, and another run (or machine's clock) may
#: have stored the paper meanwhile.
SEEN_SLACK = timedelta(days=2)


def held_ids(
    conn: Connection, subscriber_ids: Sequence[int], since: datetime | None = None
) -> dict[int, set[int]]:
    """For each of ``subscriber_ids`` (at most 900), the ids of every paper their digests
    kept so far hold (pending, being sent or sent); with ``since``, only of digests recorded
    at or after it (by ``ix_deliveries_subscriber``)."""
    held: dict[int, set[int]] = {i: set() for i in subscriber_ids}
    c = deliveries.c
    query = sa.select(c.subscriber_id, c.papers).where(
        c.subscriber_id.in_(subscriber_ids), c.status.in_(HOLDING)
    )
    if since is not None:
        query = query.where(c.created_at >= since)
    rows = conn.execute(query)
    for sid, blob in rows:
        held[sid].update(unpack_ids(blob))
    return held


def held_since(conn: Connection, ids: Iterable[int]) -> datetime | None:
    """Since when digests may hold any of papers ``ids``: a digest holds only papers that
    existed when it was recorded, so none recorded before the earliest ``first_seen`` of
    them (less :data:`SEEN_SLACK`) does. None: no bound (no such paper)."""
    earliest: datetime | None = None
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 900):
        part = wanted[start : start + 900]
        first = conn.execute(
            sa.select(sa.func.min(papers.c.first_seen)).where(papers.c.id.in_(part))
        ).scalar()
        if first is not None and (earliest is None or _utc(first) < earliest):
            earliest = _utc(first)
    return None if earliest is None else earliest - SEEN_SLACK


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def number_papers(conn: Connection, keys: Sequence[str], when: datetime) -> dict[str, int]:
    """Ids for ``keys`` no stored paper has (a digest made from a listing that was not
    stored): a ``papers`` row with the key as its title, found by no listing, pruned with
    the old papers. Rows another writer adds meanwhile are taken as they are."""
    rows = [
        {
            "key": k,
            "title": k,
            "abstract": "",
            "authors": "[]",
            "upvotes": 0,
            "extra": "{}",
            "first_seen": when,
        }
        for k in keys
    ]
    insert = (
        postgresql.insert(papers) if conn.dialect.name == "postgresql" else sqlite.insert(papers)
    )
    for start in range(0, len(rows), 500):
        conn.execute(insert.on_conflict_do_nothing(), rows[start : start + 500])
    return ids_of_keys(conn, keys)
