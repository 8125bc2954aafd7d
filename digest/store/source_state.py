"""The source-state repository: what each configured source last did (table
``source_state``), for ``digest sources``, ``digest status`` and conditional GET.

Validators: a source remembers the ``ETag`` and ``Last-Modified`` of the last 200 of each
URL it fetches. The table has one ``validated_url``/``etag``/``last_modified`` per source:
a source with one URL (the usual case) keeps it in those columns; a source with several
keeps them all as a JSON object ``{"url": [etag, last_modified], ...}`` in
``validated_url`` (a URL never starts with ``{``), the other two columns empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.store.schema import aware, begin, retried, source_state, utc_now

#: An error is kept to this many characters (a source may answer with a whole page).
MAX_ERROR = 2000


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source's record: when it was first and last fetched, its last success (and how
    many papers that gave), its last error, and ``failures``: failed fetches in a row since
    the last success."""

    name: str
    kind: str
    first_seen: datetime
    last_fetch_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_count: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    validated_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def failing(self) -> bool:
        """Its last fetch failed."""
        return self.failures > 0


Validators = dict[str, tuple[str | None, str | None]]


class SourceStates:
    """Reads and writes of ``source_state``; raises :class:`StateError`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_ok(self, name: str, kind: str, day: date, count: int, at: datetime) -> None:
        """Source ``name`` gave ``day``'s listing of ``count`` papers at ``at``: its run of
        failures ends. (The dates fetched are the ``listings`` table's: ``day`` is not kept
        here, and ``count`` is what this fetch gave, the last date fetched's.)"""
        del day  # see the docstring: the listings table records it
        values = {"kind": kind, "last_fetch_at": at, "last_ok_at": at, "last_count": count}
        self._write(name, kind, at, {**values, "failures": 0})

    def record_failure(self, name: str, kind: str, error: str, at: datetime) -> None:
        """Source ``name`` failed at ``at`` with ``error``: one more failure in a row."""
        values: dict[str, Any] = {
            "kind": kind,
            "last_fetch_at": at,
            "last_error": error[:MAX_ERROR],
            "last_error_at": at,
            "failures": source_state.c.failures + 1,
        }
        self._write(name, kind, at, values, first={"failures": 1})

    def validators(self, name: str) -> Validators:
        """The validators source ``name`` saved: URL -> (ETag, Last-Modified)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    source_state.c.validated_url, source_state.c.etag, source_state.c.last_modified
                ).where(source_state.c.name == name)
            ).first()
        if row is None or not row[0]:
            return {}
        url, etag, modified = row
        if url.startswith("{"):
            try:
                data = json.loads(url)
            except ValueError:
                return {}
            return {
                str(u): (_text(v[0]), _text(v[1]))
                for u, v in data.items()
                if isinstance(v, list) and len(v) == 2
            }
        return {url: (etag, modified)}

    def save_validators(
        self, name: str, mapping: Mapping[str, tuple[str | None, str | None]]
    ) -> None:
        """Keep ``mapping`` (URL -> (ETag, Last-Modified)) as source ``name``'s validators,
        in place of those it had; URLs with neither validator are left out."""
        kept = {u: v for u, v in mapping.items() if v[0] or v[1]}
        if len(kept) > 1:
            columns = {
                "validated_url": json.dumps({u: list(v) for u, v in kept.items()}),
                "etag": None,
                "last_modified": None,
            }
        elif kept:
            ((url, (etag, modified)),) = kept.items()
            columns = {"validated_url": url, "etag": etag, "last_modified": modified}
        else:
            columns = {"validated_url": None, "etag": None, "last_modified": None}
        self._write(name, "", utc_now(), columns)  # a source not fetched yet: kind unknown

    def states(self) -> list[SourceState]:
        """Every source's record, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(source_state).order_by(source_state.c.name)).mappings()
            return [_state(r) for r in rows]

    def state(self, name: str) -> SourceState | None:
        """Source ``name``'s record, or None if it never fetched."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(source_state).where(source_state.c.name == name))
                .mappings()
                .first()
            )
            return _state(row) if row is not None else None

    def _write(
        self,
        name: str,
        kind: str,
        at: datetime,
        values: dict[str, Any],
        *,
        first: Mapping[str, Any] | None = None,
    ) -> None:
        """Update source ``name``'s row with ``values``, or insert it (with ``first`` in
        place of those values that are expressions); two processes inserting it at once: the
        loser updates it."""

        def attempt() -> None:
            with begin(self.engine) as conn:
                where = source_state.c.name == name
                if conn.execute(sa.select(source_state.c.name).where(where)).first():
                    conn.execute(sa.update(source_state).where(where).values(**values))
                    return
                row = {"name": name, "kind": kind, "first_seen": at, "failures": 0}
                conn.execute(sa.insert(source_state).values({**row, **values, **(first or {})}))

        retried(attempt, f"record the state of source {name!r}")


def _state(r: Any) -> SourceState:
    return SourceState(
        name=r["name"],
        kind=r["kind"],
        first_seen=aware(r["first_seen"]) or utc_now(),
        last_fetch_at=aware(r["last_fetch_at"]),
        last_ok_at=aware(r["last_ok_at"]),
        last_count=r["last_count"],
        last_error=r["last_error"],
        last_error_at=aware(r["last_error_at"]),
        failures=r["failures"],
        validated_url=r["validated_url"],
        etag=r["etag"],
        last_modified=r["last_modified"],
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
