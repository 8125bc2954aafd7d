"""The run's sources, made from the configuration: each enabled ``[[sources]]`` entry as a
:class:`~digest.run.fetch.NamedSource`, together a :class:`~digest.run.fetch.SourceSet`.

Every HTTP source gets the operator's User-Agent (``user_agent``, else the project's name
and version with the ``mail.from`` address), its ``min_interval`` (None: the host's own,
arXiv's 3 s), the conditional-GET validators it saved last time (``source_state``), and a
deadline: its ``timeout`` for each of its ``retries + 1`` attempts, plus the longest waits
between them (our backoff, and the host's interval on a gated host such as arXiv). A
source past its deadline fails for this run; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.config import Config, SourceSettings
from digest.models import Paper
from digest.run.fetch import Fetcher, NamedSource, SourceSet
from digest.sources import ArxivSource, FeedSource, FileSource, HttpSource
from digest.sources.gate import effective_interval
from digest.sources.http import backoff_delay, default_user_agent

if TYPE_CHECKING:
    from digest.store import Store

Validators = dict[str, tuple[str | None, str | None]]


def user_agent(config: Config) -> str:
    """The User-Agent of every request to a source: ``user_agent`` from the config, else
    :func:`~digest.sources.http.default_user_agent` with the ``mail.from`` address."""
    return config.user_agent or default_user_agent(config.mail.sender)


def deadline(settings: SourceSettings) -> float | None:
    """The longest one fetch of the source may take (None: a file source, no network):
    ``timeout`` × (``retries`` + 1), plus the longest backoff before each retry (with its
    full jitter) and, on a host with an interval (arXiv), that interval before each attempt."""
    if settings.kind == "file":
        return None
    attempts = settings.retries + 1
    waits = sum(backoff_delay(a, 1.0, 0.999) for a in range(1, attempts))
    urls = [settings.rss_url, settings.api_url] if settings.kind == "arxiv" else [settings.url]
    interval = max(effective_interval(u or "", settings.min_interval) for u in urls)
    return settings.timeout * attempts + waits + interval * attempts


def named_source(
    settings: SourceSettings,
    config: Config,
    *,
    validators: Validators | None = None,
    clock: Callable[[], datetime] | None = None,
) -> NamedSource:
    """One configured source, ready to fetch (``clock``: the run's "now", None: the real
    one; ``validators``: what it saved last, updated in place by its fetches)."""
    s, agent = settings, user_agent(config)
    fetcher: Fetcher
    if s.kind == "huggingface":
        fetcher = HttpSource(
            s.url or "",
            timeout=s.timeout,
            max_retries=s.retries,
            max_bytes=s.max_bytes,
            user_agent=agent,
            min_interval=s.min_interval,
            today=(lambda: clock().astimezone(UTC).date()) if clock else None,
        )
        validators = None  # the API is read page by page: no conditional GET
    elif s.kind == "arxiv":
        validators = {} if validators is None else validators
        fetcher = ArxivSource(
            s.name,
            s.categories,
            announce=s.announce,
            rss_url=s.rss_url,
            api_url=s.api_url,
            timeout=s.timeout,
            max_retries=s.retries,
            max_bytes=s.max_bytes,
            user_agent=agent,
            min_interval=s.min_interval,
            clock=clock,
            validators=validators,
        )
    elif s.kind == "feed":
        validators = {} if validators is None else validators
        fetcher = FeedSource(
            s.name,
            s.url or "",
            timezone=config.zone,
            timeout=s.timeout,
            max_retries=s.retries,
            max_bytes=s.max_bytes,
            user_agent=agent,
            min_interval=s.min_interval,
            clock=clock,
            validators=validators,
        )
    elif s.kind == "file" and s.path is not None:
        fetcher, validators = FileSource(s.path), None
    else:
        raise ValueError(f"source {s.name!r}: unknown kind {s.kind!r} or no path")
    return NamedSource(s.name, s.kind, fetcher, deadline(s), validators)


def make_sources(
    config: Config, store: Store | None = None, *, now: datetime | None = None
) -> SourceSet:
    """Every enabled source of ``config`` as one :class:`SourceSet` recording in ``store``.

    ``now`` fixes the sources' clock (which date is arXiv's latest announcement, which
    date an undated feed entry belongs to): tests and ``digest demo``; None: the real time
    at each fetch (``digest serve`` keeps one set for every pass).
    """
    clock = (lambda: now) if now is not None else None
    sources = [
        named_source(
            s,
            config,
            validators=store.sources.validators(s.name) if store is not None else None,
            clock=clock,
        )
        for s in config.enabled_sources
    ]
    return SourceSet(sources, store=store, now=now)


def outside(papers: Sequence[Paper], wanted: Collection[str] | None) -> frozenset[str]:
    """The keys of ``papers`` listed by none of the ``wanted`` sources (None: every source
    is wanted, so none): what a subscriber who chose their sources is not sent."""
    if wanted is None:
        return frozenset()
    chosen = set(wanted)
    return frozenset(p.key for p in papers if chosen.isdisjoint(p.sources))
