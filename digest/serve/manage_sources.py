"""The manage page's choice of sources: a box per configured, enabled source, all ticked for
a subscriber who chose none (every source, the default); shown only when two sources or
more are enabled.

Saved only from a page that showed the boxes (its form carries ``sources_shown``: an
unticked box is not sent, so a page without the boxes would read as "none"). Every box
ticked stores "every source" (None: a source added later is theirs too); none ticked is an
error. A source they chose that the page does not show (disabled or taken out of the
configuration) stays chosen unless they tick them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.config import Config, SourceSettings
from digest.models import Subscriber

#: The form field of the boxes, and the one saying the page showed them.
FIELD, SHOWN = "sources", "sources_shown"
NONE_CHOSEN = "choose at least one source"


@dataclass(frozen=True)
class SourceOption:
    """One box: the source's name, a few words on what it lists, whether it is ticked."""

    name: str
    about: str
    chosen: bool


@dataclass(frozen=True)
class SourceChoice:
    """What ``web/_sources.html`` shows: the boxes, in the configuration's order."""

    options: tuple[SourceOption, ...]

    @property
    def every(self) -> bool:
        return all(o.chosen for o in self.options)


def about(src: SourceSettings) -> str:
    """``arXiv cs.LG, stat.ML``, ``Hugging Face daily papers``, ``feed from example.org``."""
    if src.kind == "arxiv":
        return "arXiv " + ", ".join(src.categories)
    if src.kind == "huggingface":
        return "Hugging Face daily papers"
    if src.kind == "feed":
        return f"feed from {urlsplit(src.url or '').hostname or src.url}"
    return "listings kept by this site"


def source_choice(
    config: Config, sub: Subscriber, ticked: Sequence[str] | None = None
) -> SourceChoice | None:
    """The boxes for ``sub`` (``ticked``: as posted, else their stored choice); None with
    fewer than two enabled sources (nothing to choose)."""
    enabled = config.enabled_sources
    if len(enabled) < 2:
        return None
    chosen = set(ticked) if ticked is not None else sub.sources
    return SourceChoice(
        tuple(SourceOption(s.name, about(s), chosen is None or s.name in chosen) for s in enabled)
    )


def chosen_sources(
    config: Config, sub: Subscriber, ticked: Sequence[str]
) -> tuple[tuple[str, ...] | None, str | None]:
    """The sources to store from the boxes ``ticked``: (None, None) for every box (every
    source); (names, None) for some, with those chosen before that the page did not show;
    (None, :data:`NONE_CHOSEN`) for none. Names not configured are ignored."""
    shown = [s.name for s in config.enabled_sources]
    picked = [name for name in shown if name in set(ticked)]
    if not picked:
        return None, NONE_CHOSEN
    if len(picked) == len(shown):
        return None, None
    hidden = [name for name in sub.sources or () if name not in shown]
    return tuple(picked + hidden), None
