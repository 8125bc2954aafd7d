"""The outbox's hot path, straight to the database driver: a day's digests and their papers
as rows made before the transaction and written in multi-row INSERTs, and the sent marks.

SQLAlchemy's per-row parameter processing and statement machinery cost more than the
statements themselves (30 paper rows per digest, 100,000 digests a day).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from digest.store.schema import deliveries, delivery_papers


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
)
PAPER_COLUMNS = ("delivery_id", "subscriber_id", "paper_key", "position", "shown")


class DriverWrites:
    """The statements of :class:`Outbox`'s hot path, prepared once for ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self._insert_deliveries, self._bind_deliveries = driver_insert(
            engine, deliveries, DELIVERY_COLUMNS
        )
        self._insert_papers, _ = driver_insert(engine, delivery_papers, PAPER_COLUMNS)
        mark = self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql_mark_sent = (
            f"UPDATE deliveries SET status = 'sent', sent_at = {mark}, error = NULL,"
            " attempts = attempts + 1 WHERE id IN ({ids})"
        )
        self._sql_bounces_reset = (
            "UPDATE subscribers SET hard_bounces = 0 WHERE hard_bounces > 0 AND id IN"
            " (SELECT subscriber_id FROM deliveries WHERE id IN ({ids}))"
        )
        process = deliveries.c.sent_at.type.bind_processor(engine.dialect)
        self._bind_sent_at: Callable[[datetime], Any] = process or (lambda value: value)

    def rows(
        self, plans: Sequence[PlannedDelivery], created_at: datetime, claimed_by: int | None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The rows of ``plans``' deliveries (bound as SQLAlchemy would) and of their papers
        (plain ints, text, bools), made before the transaction: none of it holds the write
        lock."""
        delivery_rows = [
            self._bind_deliveries(_delivery_tuple(p, created_at, claimed_by)) for p in plans
        ]
        paper_rows = [row for p in plans for row in _paper_tuples(p)]
        return delivery_rows, paper_rows

    def insert(
        self,
        conn: Connection,
        delivery_rows: list[tuple[Any, ...]],
        paper_rows: list[tuple[Any, ...]],
    ) -> None:
        """Write rows made by :meth:`rows` in two multi-row INSERTs."""
        self._insert_deliveries(conn, delivery_rows)
        self._insert_papers(conn, paper_rows)

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
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    one = f"({', '.join([mark] * len(columns))})"
    full = head + ", ".join([one] * INSERT_ROWS)

    def insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            part = rows[start : start + INSERT_ROWS]
            sql = full if len(part) == INSERT_ROWS else head + ", ".join([one] * len(part))
            conn.exec_driver_sql(sql, tuple([value for row in part for value in row]))

    procs = [table.c[name].type.bind_processor(dialect) for name in columns]
    if not any(procs):
        return insert, lambda row: row

    def bind(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(p(v) if p else v for p, v in zip(procs, row, strict=True))

    return insert, bind


def delivery_row(
    plan: PlannedDelivery, created_at: datetime, claimed_by: int | None
) -> dict[str, Any]:
    return dict(zip(DELIVERY_COLUMNS, _delivery_tuple(plan, created_at, claimed_by), strict=True))


def _delivery_tuple(
    plan: PlannedDelivery, created_at: datetime, claimed_by: int | None
) -> tuple[Any, ...]:
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
    )


def _paper_tuples(plan: PlannedDelivery) -> list[tuple[Any, ...]]:
    return [
        (plan.id, plan.subscriber_id, key, i, i < plan.shown)
        for i, key in enumerate(plan.paper_keys)
    ]


def paper_rows(plan: PlannedDelivery) -> list[dict[str, Any]]:
    return [
        {
            "delivery_id": plan.id,
            "subscriber_id": plan.subscriber_id,
            "paper_key": key,
            "position": i,
            "shown": i < plan.shown,
        }
        for i, key in enumerate(plan.paper_keys)
    ]
