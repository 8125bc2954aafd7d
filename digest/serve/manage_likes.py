"""The manage page's likes (issue 17): the papers a subscriber liked and disliked, each with
a Remove button, and the import of a reference library (``web/_likes.html``).

Likes are the subscriber's own, also for a subscriber of the configuration (whose queries
and schedule are the operator's): they may remove any and import a library. A like the
configuration itself lists (origin ``config``) has no Remove button: the next pass would
add it back; it says to ask the operator.

The import takes one file, BibTeX (``.bib``) or CSL JSON (``.json``) as Zotero, Mendeley or
Google Scholar export it, read by :func:`digest.select.library.read_library`, posted as
``multipart/form-data`` (``web.max_body`` bounds it: past it the whole request is refused
with 413). Its entries are recorded as likes of origin ``web``; the page reports how many
were imported (and linked to stored papers), already there, and skipped with their
reasons. A file that is neither format is a form error naming it, and nothing is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile

from digest.compose.text import clean
from digest.errors import RosterError
from digest.select.library import LibraryEntry, read_library
from digest.store import Store
from digest.store.like_rows import LikeEntry

#: The manage form's actions this module answers.
LIKE_ACTIONS = ("unlike", "library")
#: The file field of the import form, and its errors' key.
FIELD = "library"
#: Where each like came from, in the page's words.
ORIGIN_WORDS = {
    "email": "from an email",
    "web": "on this site",
    "cli": "recorded by the site's operator",
    "config": "set in the site's configuration: ask its operator to remove it",
    "import": "imported by the site's operator",
    "library": "from your library",
}
#: Most entries of a report's skipped or refused list shown (the counts say the rest).
REPORT_LINES = 50


@dataclass(frozen=True)
class LikeItem:
    """One line of the list: the paper's title (else its key), its key, where it came
    from in words, and whether it may be removed here."""

    title: str
    key: str
    origin: str
    removable: bool


@dataclass(frozen=True)
class LikesShown:
    """What ``web/_likes.html`` lists: liked and disliked papers, oldest first."""

    liked: tuple[LikeItem, ...]
    disliked: tuple[LikeItem, ...]


@dataclass(frozen=True)
class ImportReport:
    """What an import did: entries ``imported`` (``linked`` of them to stored papers),
    ``already`` there, and (ref, reason) for those ``skipped`` by the file's reading or
    ``refused`` by the store, at most :data:`REPORT_LINES` each (``more`` counts the rest)."""

    source: str
    imported: int
    linked: int
    already: int
    skipped: tuple[tuple[str, str], ...]
    more: int = 0


def likes_shown(store: Store, subscriber_id: int) -> LikesShown:
    """The subscriber's likes and dislikes as the page lists them."""
    items: dict[str, list[LikeItem]] = {"like": [], "dislike": []}
    for like in store.likes.of(subscriber_id):
        item = LikeItem(
            title=clean(like.title) or clean(like.key),
            key=like.key,
            origin=ORIGIN_WORDS.get(like.origin, like.origin),
            removable=like.origin != "config",
        )
        items[like.kind].append(item)
    return LikesShown(tuple(items["like"]), tuple(items["dislike"]))


async def like_action(
    store: Store, subscriber_id: int, action: str, data: FormData
) -> tuple[str, dict[str, str], ImportReport | None]:
    """Do the manage form's ``action`` (one of :data:`LIKE_ACTIONS`) posted with ``data``:
    (the note for the page, form errors by field, the import's report)."""
    if action == "unlike":
        key = data.get("key")
        if not isinstance(key, str) or not key.strip():
            return "", {FIELD: "Nothing to remove: reload the page and try again."}, None
        title = next((i.title for i in _all(store, subscriber_id) if i.key == key), key)
        removed = store.likes.remove(subscriber_id, [key])
        note = f"Removed “{clean(title)}”." if removed else "It was already removed."
        return note, {}, None
    upload = data.get(FIELD)
    if not isinstance(upload, UploadFile) or not upload.filename:
        return "", {FIELD: "Choose a BibTeX (.bib) or CSL JSON (.json) file to import."}, None
    content = await upload.read()
    name = clean(upload.filename)[:200] or "library"
    try:
        read = read_library(content, name)
    except RosterError as exc:
        return "", {FIELD: f"{exc}. Nothing was imported."}, None
    counts = store.likes.add(subscriber_id, [_entry(e) for e in read.entries], "like", "web")
    skipped = list(read.skipped) + [(r.id, r.reason) for r in counts.rejected]
    report = ImportReport(
        source=name,
        imported=counts.added,
        linked=sum(1 for r in counts.results if r.outcome == "added" and r.stored),
        already=counts.unchanged + counts.changed,
        skipped=tuple(skipped[:REPORT_LINES]),
        more=max(0, len(skipped) - REPORT_LINES),
    )
    return f"{name}: {report.imported} imported.", {}, report


def _all(store: Store, subscriber_id: int) -> tuple[LikeItem, ...]:
    shown = likes_shown(store, subscriber_id)
    return shown.liked + shown.disliked


def _entry(e: LibraryEntry) -> LikeEntry:
    """A library entry as a like: its key, its title and abstract, its other identities."""
    keys = e.identities
    return LikeEntry(e.key, e.title, e.abstract, tuple(k for k in keys if k != e.key))
