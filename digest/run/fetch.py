"""Every configured source at once: :class:`SourceSet` fetches a date from each enabled
source side by side (a slow source holds nobody past its own timeout), records what each
did (``source_state``), and gives back one listing of every source's papers, each paper
once, with the sources that failed named in :attr:`Listing.failures`. Only when every
source fails does the fetch fail (:class:`SourceError`), as with one source.

A date a source could not give (it failed, or the service was down) is fetched again by
the next runs, for :data:`CATCH_UP_DAYS` days: its papers join that run's listing and
reach each subscriber once they arrive (the differ never sends a paper twice). A source
that answers 304 Not Modified keeps what is stored for the date.

:func:`store_listing` stores a fetched listing, source by source, and returns it as stored
(papers under their stored keys, merged across sources), which is what the run diffs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from digest.errors import DigestError, SourceError
from digest.identity import dedupe, paper_identities
from digest.models import Listing, Paper, SourceFailure
from digest.sources.http import NotModified

if TYPE_CHECKING:
    from digest.store import Store

log = logging.getLogger("digest.sources")

#: How many days back a date a source missed is fetched again by later runs.
CATCH_UP_DAYS = 7


class Fetcher(Protocol):
    async def fetch(self, day: date) -> Listing: ...


@dataclass(frozen=True)
class NamedSource:
    """One configured source: its ``name`` (shown to readers), ``kind``, the fetcher, and the
    longest a fetch may take (its timeout times its attempts, plus the waits between)."""

    name: str
    kind: str
    fetcher: Fetcher
    deadline: float | None = None
    #: The conditional-GET validators the fetcher's HTTP edge reads and updates, if any.
    validators: dict[str, tuple[str | None, str | None]] | None = None


@dataclass
class Part:
    """What one source gave for one date: its listing, or its failure."""

    source: NamedSource
    day: date
    listing: Listing | None = None
    failure: SourceFailure | None = None
    unchanged: bool = False
    error: DigestError | None = None  # what the source raised, re-raised when it was alone


@dataclass
class SourceSet:
    """The enabled sources of a configuration, fetched together (see the module)."""

    sources: Sequence[NamedSource]
    store: Store | None = None
    now: datetime | None = None
    parts: list[Part] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    async def fetch(self, day: date, *, record: bool = True, catch_up: bool = True) -> Listing:
        """Every source's listing of ``day`` (with the dates they missed lately, unless
        ``catch_up`` is false), merged; raises :class:`SourceError` when every source failed
        for ``day``. ``record=False`` (a dry run) leaves ``source_state`` as it is."""
        wanted = [(s, day) for s in self.sources] + (self._catch_up(day) if catch_up else [])
        parts = await asyncio.gather(*(self._one(s, d) for s, d in wanted))
        self.parts = list(parts)
        if record:
            self._record(parts)
        today = [p for p in parts if p.day == day]
        failures = tuple(p.failure for p in today if p.failure is not None)
        if today and len(failures) == len(today):
            if len(today) == 1 and today[0].error is not None:
                raise today[0].error
            raise _all_failed(day, failures)
        papers: list[Paper] = []
        warnings: list[str] = []
        late: list[date] = []
        for p in parts:
            if p.listing is None:
                continue
            papers += p.listing.papers
            warnings += [f"{p.source.name}: {w}" for w in p.listing.warnings]
            if p.day != day and p.day not in late:
                late.append(p.day)
        return Listing(
            date=day,
            papers=tuple(dedupe(papers)),
            source="+".join(self.names),
            warnings=tuple(warnings),
            failures=failures,
            also=tuple(sorted(late)),
            parts=tuple(p.listing for p in parts if p.listing is not None and not p.unchanged),
        )

    def _catch_up(self, day: date) -> list[tuple[NamedSource, date]]:
        """(source, date) pairs of the last :data:`CATCH_UP_DAYS` days that the source has
        not given yet while others did (or a run was recorded): fetched again."""
        if self.store is None:
            return []
        since = day - timedelta(days=CATCH_UP_DAYS)
        states = {s.name: s for s in self.store.sources.states()}
        others: set[date] = set()
        fetched: dict[str, set[date]] = {}
        for s in self.sources:
            fetched[s.name] = self.store.papers.fetched_dates(s.name, since)
            others |= fetched[s.name]
        # A date whose run failed (every source down, say) is missed by every source.
        others |= {r.day for r in self.store.run_log.runs(4 * CATCH_UP_DAYS) if r.day >= since}
        out: list[tuple[NamedSource, date]] = []
        for s in self.sources:
            state = states.get(s.name)
            if state is None:  # a source new to this database: nothing to catch up on
                continue
            known_since = state.first_seen.date()
            for d in sorted(others - fetched[s.name]):
                if since <= d < day and d >= known_since:
                    out.append((s, d))
        return out

    async def _one(self, source: NamedSource, day: date, *, again: bool = True) -> Part:
        part = Part(source, day)
        try:
            coro = source.fetcher.fetch(day)
            listing = await (asyncio.wait_for(coro, source.deadline) if source.deadline else coro)
        except NotModified:
            stored = self.store.papers.source_listing(day, source.name) if self.store else None
            if stored is not None:
                part.listing, part.unchanged = stored, True
                return part
            if source.validators is not None and again:  # nothing stored: ask unconditionally
                source.validators.clear()
                return await self._one(source, day, again=False)
            part.failure = SourceFailure(
                source.name,
                f"the server answered 304 Not Modified to a request for {day} made without"
                " validators",
                "the server is misconfigured; the next run asks again",
            )
            return part
        except TimeoutError:
            part.failure = SourceFailure(
                source.name,
                f"no answer within {source.deadline:g} s",
                "the source is slow or down; the next run fetches this date again",
            )
            return part
        except DigestError as exc:  # SourceError, and a ConfigError of a file source
            part.failure = SourceFailure(source.name, str(exc), getattr(exc, "hint", None))
            part.error = exc
            return part
        except Exception as exc:  # a bug in one source's code must not stop the others
            log.exception("source=%s date=%s failed unexpectedly", source.name, day)
            part.failure = SourceFailure(
                source.name,
                f"unexpected {type(exc).__name__}: {exc}",
                "a bug: please report it with the log; the next run fetches this date again",
            )
            return part
        part.listing = _named(listing, source.name)
        return part

    def _record(self, parts: Sequence[Part]) -> None:
        """What each source did, in ``source_state`` (never fails the fetch): the dates it
        caught up first, the run's own date last, so that its state (failing or not, the
        last count) is that of the run's date."""
        if self.store is None:
            return
        at = self.now or datetime.now().astimezone()
        try:
            for p in sorted(parts, key=lambda p: p.day):
                if p.failure is not None:
                    log.warning("source=%s date=%s error=%s", p.source.name, p.day, p.failure.error)
                    self.store.sources.record_failure(
                        p.source.name, p.source.kind, p.failure.error, at
                    )
                elif p.listing is not None:
                    count = len(p.listing.papers)
                    self.store.sources.record_ok(p.source.name, p.source.kind, p.day, count, at)
            for s in self.sources:
                if s.validators:
                    self.store.sources.save_validators(s.name, s.validators)
        except DigestError as exc:
            log.warning("could not record the sources' state: %s", exc)


def _named(listing: Listing, name: str) -> Listing:
    """``listing`` as source ``name``'s: its name on the listing and on each paper."""
    papers = tuple(
        p if name in p.sources else replace(p, sources=(*p.sources, name)) for p in listing.papers
    )
    return replace(listing, source=name, papers=papers)


def _all_failed(day: date, failures: Sequence[SourceFailure]) -> SourceError:
    lines = "; ".join(f"{f.source}: {f.error}" for f in failures)
    return SourceError(
        f"every source for {day}",
        f"all {len(failures)} failed: {lines}",
        hint="nothing was sent; the next run fetches these dates again",
    )


def store_listing(store: Store, listing: Listing, at: datetime) -> Listing:
    """Store ``listing`` (source by source when it came from a :class:`SourceSet`) and give
    it back as stored: every source's papers of its date and the late dates it carries,
    under their stored keys, each once."""
    parts = listing.parts or (listing,)
    stored_parts = [store.papers.save_listing(part, at) for part in parts]
    if not listing.parts:
        return replace(stored_parts[0], also=listing.also, failures=listing.failures)
    names = set(listing.source.split("+")) if listing.source else None
    today = store.papers.listing(listing.date, sources=names)
    papers: list[Paper] = list(today.papers) if today is not None else []
    for part in stored_parts:
        if part.date != listing.date:
            papers += part.papers
    return replace(listing, papers=tuple(dedupe(papers)), parts=())


def known_papers(store: Store, papers: Sequence[Paper]) -> dict[str, str]:
    """The papers of ``papers`` the store knows already, by any of their identities (an
    arXiv id, a DOI, a link; a title hash only as their own key): their key -> the key they
    are stored under. The others are new."""
    wanted = {
        p.key: [i for i in paper_identities(p) if i == p.key or not i.startswith("title:")]
        for p in papers
    }
    found = store.papers.resolve({i for ids in wanted.values() for i in ids})
    out: dict[str, str] = {}
    for key, ids in wanted.items():
        stored = next((found[i] for i in ids if i in found), None)
        if stored is not None:
            out[key] = stored
    return out


def describe(failures: Sequence[SourceFailure]) -> list[str]:
    """One line per failed source, for the report's warnings."""
    return [f"source {f.source} failed: {f.error}" for f in failures]
