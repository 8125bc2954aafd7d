"""Each source's health, for ``digest sources``, ``digest status``, ``/admin`` and the admin
alert: every configured source (and each one the database knows that the configuration no
longer names: "removed") with its last fetch, last success, stored papers, failures in a
row and last error.

*Failures in a row* are counted twice: ``failures``, the fetches that failed since the last
success (``source_state``; a run that also catches up missed dates fetches a source more
than once), and ``runs_failed``, the recorded runs since its last success in which it was
fetched (:func:`runs_failed`), which is what the alert counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from digest.config import Config, SourceSettings
from digest.store import RunRecord, SourceState, Store

#: How many recent runs are read to count a source's failed runs in a row.
RUNS_READ = 100


@dataclass(frozen=True)
class SourceHealth:
    """One source as ``digest sources`` shows it.

    ``status``: ``ok`` (its last fetch worked; ``quiet`` when it gave no paper: a weekend or
    a holiday for arXiv), ``failing``, ``unknown`` (never fetched), ``disabled``
    (``enabled = false``), ``removed`` (in the database, no longer configured)."""

    name: str
    kind: str
    enabled: bool = True
    configured: bool = True
    location: str | None = None
    first_seen: datetime | None = None
    last_fetch_at: datetime | None = None
    last_ok_at: datetime | None = None
    last_count: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    papers: int = 0
    failures: int = 0
    runs_failed: int = 0

    @property
    def status(self) -> str:
        if not self.configured:
            return "removed"
        if not self.enabled:
            return "disabled"
        if self.failures:
            return "failing"
        return "ok" if self.last_ok_at is not None else "unknown"

    @property
    def quiet(self) -> bool:
        """Its last fetch worked and gave no paper (for arXiv: no announcement that day)."""
        return self.status == "ok" and self.last_count == 0


def location(src: SourceSettings) -> str | None:
    """What the source reads: its URL, an arXiv source's feed, a file source's path."""
    if src.kind == "arxiv":
        return src.rss_url + "+".join(src.categories)
    if src.kind == "file":
        return str(src.path) if src.path is not None else None
    return src.url


def runs_failed(state: SourceState, runs: Sequence[RunRecord]) -> int:
    """How many of ``runs`` (newest first) in a row the source failed in: the finished
    runs since its last success (or since it was first seen) up to its last fetch. Each run
    fetches every enabled source, so a run after its last success is one it failed in.

    Runs are told apart by their start: the fetch of a run is recorded at the run's start
    or later, so a success in a run leaves ``last_ok_at`` at or after that run's start."""
    if not state.failing:
        return 0
    count = 0
    for r in runs:
        if r.outcome == "running":
            continue
        if state.last_ok_at is not None and r.started_at <= state.last_ok_at:
            break
        if (r.finished_at or r.started_at) < state.first_seen:
            break  # before the source existed
        if state.last_fetch_at is not None and r.started_at > state.last_fetch_at:
            continue  # a run that did not fetch it (it was disabled, or fetched nothing)
        count += 1
    return count


def health(
    sources: Iterable[SourceSettings],
    states: Iterable[SourceState],
    papers: dict[str, int],
    runs: Sequence[RunRecord],
) -> list[SourceHealth]:
    """The configured ``sources`` in their order, then the sources ``states`` names that
    are no longer configured (by name); ``papers``: stored papers by source name."""
    known = {s.name: s for s in states}
    out = []
    configured = list(sources)
    for src in configured:
        out.append(
            _with_state(
                SourceHealth(src.name, src.kind, src.enabled, True, location(src)),
                known.get(src.name),
                papers,
                runs,
            )
        )
    names = {s.name for s in configured}
    for name in sorted(set(known) - names):
        state = known[name]
        out.append(_with_state(SourceHealth(name, state.kind, False, False), state, papers, runs))
    return out


def _with_state(
    base: SourceHealth, state: SourceState | None, papers: dict[str, int], runs: Sequence[RunRecord]
) -> SourceHealth:
    count = papers.get(base.name, 0)
    if state is None:
        return replace(base, papers=count)
    return SourceHealth(
        name=base.name,
        kind=base.kind or state.kind,
        enabled=base.enabled,
        configured=base.configured,
        location=base.location,
        first_seen=state.first_seen,
        last_fetch_at=state.last_fetch_at,
        last_ok_at=state.last_ok_at,
        last_count=state.last_count,
        last_error=state.last_error,
        last_error_at=state.last_error_at,
        papers=count,
        failures=state.failures,
        runs_failed=runs_failed(state, runs),
    )


def sources_health(config: Config, store: Store, *, papers: bool = True) -> list[SourceHealth]:
    """:func:`health` of ``config``'s sources, read from ``store`` (without ``papers``, the
    stored papers are not counted: 0, one query fewer over every listing); raises
    StateError."""
    return health(
        config.sources,
        store.sources.states(),
        store.papers.paper_count_by_source() if papers else {},
        store.run_log.runs(RUNS_READ),
    )


def to_json(h: SourceHealth) -> dict[str, object]:
    """One source as plain JSON values (``digest sources --json``, the status document)."""

    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "name": h.name,
        "kind": h.kind,
        "enabled": h.enabled,
        "location": h.location,
        "status": h.status,
        "quiet": h.quiet,
        "last_fetch": when(h.last_fetch_at),
        "last_ok": when(h.last_ok_at),
        "last_count": h.last_count,
        "papers": h.papers,
        "failures_in_a_row": h.runs_failed,
        "fetch_failures_in_a_row": h.failures,
        "last_error": h.last_error,
        "last_error_at": when(h.last_error_at),
    }
