"""What a liked id names, and the rows of ``likes`` made of it, on the caller's connection.

An id is an arXiv id (with or without version, ``arXiv:`` prefix, abs/pdf/html URL, arXiv
DOI), a DOI (bare, ``doi:`` or a doi.org URL), a paper's key or one of its identities
(``title:…``, ``link:…``, a page's URL): it names the stored paper whose key or alias
(``paper_aliases``) it is. An arXiv id or DOI we do not have is kept under its identity
key, so the paper matches when it arrives; an entry that brings its own title or abstract
(a library's) is kept under its first identity likewise. Anything else is unusable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from digest.identity import arxiv_id_of, canonical_link, doi_of
from digest.store.paper_rows import known_keys

if TYPE_CHECKING:  # bibtexparser comes with it (~11 MB a process): for reading a library only
    from digest.select.library import LibraryEntry

#: Where a like was recorded. A person's own choice of one paper (the CLI, the web, a link
#: in an email) is ``PERSONAL``: the bulk origins (the config, an import, a library file)
#: add rows but never change or remove one of those.
ORIGINS = ("cli", "web", "email", "config", "import", "library")
PERSONAL = ("cli", "web", "email")
KINDS = ("like", "dislike")

UNUSABLE = (
    "not an arXiv id, a DOI, or the key or link of a stored paper"
    " (give 2503.01234, arxiv.org/abs/2503.01234v2, 10.1000/xyz or a key from digest preview)"
)


@dataclass(frozen=True)
class LikeEntry:
    """One paper to like or dislike: ``id`` as given (shown back), the ``title`` and
    ``abstract`` the giver had (a library entry's; empty from the CLI), and ``aliases``:
    more identities of the same paper (a library entry's DOI and title hash)."""

    id: str
    title: str = ""
    abstract: str = ""
    aliases: tuple[str, ...] = ()

    @classmethod
    def of_library(cls, entry: LibraryEntry) -> LikeEntry:
        """A library file's entry: its paper key, its text, its other identities."""
        keys = entry.identities
        return cls(entry.key, entry.title, entry.abstract, tuple(k for k in keys if k != entry.key))


@dataclass(frozen=True)
class Resolved:
    """What an entry names: ``key`` (None: unusable, see ``reason``), and whether it is a
    stored paper's key (``stored``) or an identity kept for a paper yet to come."""

    entry: LikeEntry
    key: str | None
    stored: bool = False
    reason: str = ""


def identities_of(raw: str) -> tuple[list[str], bool]:
    """The keys ``raw`` may name, best first, and whether the first may be kept when no
    stored paper has it (an arXiv id or a DOI)."""
    text = raw.strip()
    arxiv = arxiv_id_of(text)
    if arxiv:
        return [arxiv], True
    doi = doi_of(text)
    if doi:
        return ["doi:" + doi], True
    if text.startswith(("title:", "link:")):
        return [text], False
    link = canonical_link(text)
    if link:
        return ["link:" + link], False
    return ([text] if text else []), False


def resolve(conn: Connection, entries: Sequence[LikeEntry]) -> list[Resolved]:
    """Each of ``entries`` resolved (see the module's docstring), with two bulk queries."""
    wanted: list[tuple[LikeEntry, list[str], bool]] = []
    for e in entries:
        own, keepable = identities_of(e.id)
        more = [k for a in e.aliases for k in identities_of(a)[0]]
        wanted.append((e, list(dict.fromkeys(own + more)), keepable))
    found = known_keys(conn, {k for _, keys, _ in wanted for k in keys})
    out: list[Resolved] = []
    for e, keys, keepable in wanted:
        hit = next((found[k] for k in keys if k in found), None)
        if hit is not None:
            out.append(Resolved(e, hit, stored=True))
        elif keys and (keepable or ((e.title or e.abstract) and _identity(keys[0]))):
            out.append(Resolved(e, keys[0]))
        else:
            out.append(Resolved(e, None, reason=UNUSABLE))
    return out


def _identity(key: str) -> bool:
    return key.startswith(("title:", "link:", "doi:")) or arxiv_id_of(key) == key
