"""Plain frozen data passed between the pipeline's stages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from digest.words import normalise

_ARXIV_ID = re.compile(
    r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.I
)


def arxiv_base_id(raw: str | None) -> str | None:
    """The arXiv id without version suffix (``2503.01234v2`` -> ``2503.01234``), or None."""
    if not raw:
        return None
    m = _ARXIV_ID.match(raw.strip())
    return m.group(1) if m else None


def paper_key(arxiv_id: str | None, title: str) -> str:
    """The key papers were stored under before :mod:`digest.identity`: the arXiv id without
    version, else ``title:`` + the normalised title (the store maps these to new identities;
    new code uses :func:`digest.identity.key_of`)."""
    base = arxiv_base_id(arxiv_id)
    if base:
        return base
    return "title:" + " ".join(normalise(title).split())


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper of a listing.

    ``key`` is its identity (see :func:`paper_key`); ``arxiv_id`` has no version suffix.
    """

    key: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    upvotes: int = 0
    published: datetime | None = None
    num_comments: int = 0
    thumbnail: str | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    project_page: str | None = None
    doi: str | None = None  # bare and case-folded: "10.1000/xyz"
    link: str | None = None  # the paper's own page, as its source gave it (feed sources)
    categories: tuple[str, ...] = ()  # arXiv categories (the primary first), or a feed's tags
    sources: tuple[str, ...] = ()  # the names of the sources that listed it
    version: int | None = None  # the arXiv version last seen (2 for 2503.01234v2)

    @property
    def primary_category(self) -> str | None:
        return self.categories[0] if self.categories else None

    @property
    def hf_url(self) -> str | None:
        return f"https://huggingface.co/papers/{self.arxiv_id}" if self.arxiv_id else None

    @property
    def abs_url(self) -> str | None:
        return f"https://arxiv.org/abs/{self.arxiv_id}" if self.arxiv_id else None

    @property
    def pdf_url(self) -> str | None:
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else None

    @property
    def url(self) -> str | None:
        """The best link for the paper: its own page as its first source gave it (Hugging
        Face's page, arXiv's abstract page, a feed entry's link), else its arXiv abstract
        page, else its project page."""
        return self.link or self.abs_url or self.project_page or self.github_repo


#: A calendar date (inside :class:`Listing`, whose ``date`` field hides the type's name).
Day = date


@dataclass(frozen=True, slots=True)
class Listing:
    """The papers of one listing date, in the source's order, without duplicates."""

    date: date
    papers: tuple[Paper, ...]
    source: str = ""
    warnings: tuple[str, ...] = ()
    #: The sources that failed for this date (the listing holds what the others gave).
    failures: tuple[SourceFailure, ...] = ()
    #: Earlier dates whose late papers (a source that had failed) this listing carries.
    also: tuple[Day, ...] = ()
    #: Each source's own listing, as fetched, until the run stores them.
    parts: tuple[Listing, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A source that could not give a date's listing: its name, the error and a hint."""

    source: str
    error: str
    hint: str | None = None


#: A subscriber's states: ``pending`` (subscribed on the web, not confirmed yet), ``active``,
#: ``paused`` (by themselves), ``unsubscribed``, ``suspended`` (too many hard bounces).
STATES = ("pending", "active", "paused", "unsubscribed", "suspended")
#: How much of each abstract a digest shows: all of it (cut near 600 characters), its first
#: sentences up to about 300 characters, or none (titles, authors and links only).
ABSTRACT_MODES = ("full", "short", "none")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Someone who receives digests; ``keywords`` and ``exclude`` are query strings.

    ``status`` is one of :data:`STATES`; only ``active`` subscribers get digests.
    """

    email: str
    name: str | None = None
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_papers: int | None = None
    id: int | None = None
    status: str = "active"
    token: str = ""
    status_reason: str | None = None  # why not active: "removed", "config", "bounced"...
    hard_bounces: int = 0  # permanent failures in a row (reset by a success)
    # The schedule; None: the configuration's default ([schedule] and ``timezone``).
    send_at: str | None = None  # "HH:MM" in ``timezone``
    timezone: str | None = None  # IANA name
    frequency: str | None = None  # "daily" | "weekly"
    weekday: str | None = None  # for weekly: "mon".."sun"
    days: tuple[str, ...] | None = None  # for daily: only these weekdays
    next_send_at: datetime | None = None  # UTC; None: not scheduled yet
    covered_until: date | None = None  # newest listing date of the last scheduled digest
    abstract: str | None = None  # one of ABSTRACT_MODES; None: the configuration's default
    # The sources whose papers they want (names of the config's [[sources]]); None: every one.
    sources: tuple[str, ...] | None = None
    # Papers to ADD to their likes (arXiv ids, abs/pdf URLs, DOIs or paper keys) from the
    # config or an import; never removes one. The store's ``likes`` table holds them all.
    like: tuple[str, ...] = ()
    like_threshold: float | None = None  # in [0, 1]; None: the configuration's default


@dataclass(frozen=True, slots=True)
class Span:
    """A highlighted stretch ``[start, end)`` of one field of a paper.

    ``field`` is ``title``, ``abstract`` or ``author``; for ``author``, ``index`` is the
    position of the author in :attr:`Paper.authors`.
    """

    field: str
    start: int
    end: int
    index: int = 0


@dataclass(frozen=True, slots=True)
class Match:
    """A paper chosen for a subscriber, with how well and why.

    A keyword match has the ``terms`` it matched and their ``spans``; a similarity pick
    (:mod:`digest.select.similar`) has ``like``, the title of the liked paper it is nearest
    to, and ``similarity``, 0..1, shown as a percentage ("like <title>, 42%").
    """

    paper: Paper
    score: float
    terms: tuple[str, ...] = ()
    spans: tuple[Span, ...] = field(default_factory=tuple)
    like: str | None = None
    similarity: float | None = None
