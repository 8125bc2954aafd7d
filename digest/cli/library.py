"""``digest subscribers like|dislike|unlike|library``: a subscriber's liked and disliked
papers, one id at a time or from a reference library (BibTeX or CSL JSON).

Added to the ``subscribers`` group by :mod:`digest.cli.main` (:data:`LIBRARY_COMMANDS`).
Exit codes: 0 done; 1 no such subscriber, or an id that names no paper (the others are
recorded all the same); 2 usage error or a library file that cannot be read.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import click

from digest.cli.shared import EXIT_FAILED, State, check_address, fail, guard, shown
from digest.errors import RosterError
from digest.store import Store
from digest.store.like_rows import LikeEntry
from digest.store.likes import Like, LikeCounts, LikeResult

#: How :func:`_said` words each outcome of :meth:`Likes.add`.
_WORDS = {
    "added": "recorded",
    "changed": "recorded (it was a {other} before)",
    "unchanged": "already recorded",
    "kept": "already recorded",
}


def _subscriber_id(store: Store, email: str) -> int:
    """The id of the subscriber ``email``; exit 1 saying so when there is none."""
    address = check_address(email, deliverable=False)  # to find, not to send to
    sub = guard(lambda: store.members.subscriber(address))
    if sub is None or sub.id is None:
        click.echo(
            f"error: no subscriber {shown(address)} (digest subscribers list shows them)",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    return sub.id


def _record(state: State, email: str, ids: tuple[str, ...], kind: str) -> None:
    with state.store() as store:
        sid = _subscriber_id(store, email)
        counts = guard(lambda: store.likes.add(sid, [LikeEntry(i) for i in ids], kind, "cli"))
        keys = [r.key for r in counts.results if r.stored and r.key]
        titles = {k: p.title for k, p in guard(lambda: store.papers.papers_by_key(keys)).items()}
    other = "dislike" if kind == "like" else "like"
    for r in counts.results:
        if r.outcome == "rejected":
            click.echo(f"error: {kind} {shown(r.id)}: {r.reason}", err=True)
        else:
            click.echo(_said(kind, r, titles, other))
    if counts.rejected:
        sys.exit(EXIT_FAILED)


def _said(kind: str, r: LikeResult, titles: dict[str, str], other: str) -> str:
    word = _WORDS[r.outcome].format(other=other)
    if r.stored and r.key in titles:
        what = f"{r.key}: {titles[r.key]}"
    else:
        what = f"{r.key}: not stored yet, it counts when the paper arrives"
    return shown(f"{kind} {r.id}: {word} ({what})")


@click.command("like")
@click.argument("email")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.pass_obj
def like(state: State, email: str, ids: tuple[str, ...]) -> None:
    """Record papers a subscriber likes: more like them, and never sent to them again.

    ID is an arXiv id (2503.01234, with or without version), an arXiv abs or pdf URL, a
    DOI, or a stored paper's key. An arXiv id or DOI we do not have yet is kept for when
    the paper arrives.
    """
    _record(state, email, ids, "like")


@click.command("dislike")
@click.argument("email")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.pass_obj
def dislike(state: State, email: str, ids: tuple[str, ...]) -> None:
    """Record papers a subscriber dislikes: less like them, and never sent to them again.

    ID as for `digest subscribers like`; a paper liked before becomes disliked.
    """
    _record(state, email, ids, "dislike")


@click.command("unlike")
@click.argument("email")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.pass_obj
def unlike(state: State, email: str, ids: tuple[str, ...]) -> None:
    """Forget that a subscriber liked or disliked these papers (whatever recorded it)."""
    with state.store() as store:
        sid = _subscriber_id(store, email)
        for raw in ids:
            removed = guard(partial(store.likes.remove, sid, [raw]))
            said = "removed" if removed else "was neither liked nor disliked"
            click.echo(shown(f"unlike {raw}: {said}"))


@click.command("library")
@click.argument("email")
@click.argument("file", metavar="FILE")
@click.pass_obj
def library(state: State, email: str, file: str) -> None:
    """Import a reference library as the subscriber's likes: BibTeX (.bib, as Zotero,
    Mendeley and Google Scholar export it) or CSL JSON (.json); FILE - reads stdin.

    Titles and abstracts come from the file; an entry with an arXiv id or DOI (or the
    title and first author) of a stored paper is linked to it. Entries with neither title
    nor abstract, and second entries of one paper, are reported and skipped. Importing
    again adds nothing; nothing recorded otherwise is changed.
    """
    source = "<stdin>" if file == "-" else file
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        fail(RosterError(source, f"cannot read it: {exc.strerror or exc}"))
    from digest.select.library import read_library  # bibtexparser: for this command only

    read = guard(lambda: read_library(data, source))
    with state.store() as store:
        sid = _subscriber_id(store, email)
        entries = [LikeEntry.of_library(e) for e in read.entries]
        counts = guard(lambda: store.likes.add(sid, entries, "like", "library"))
    for ref, reason in read.skipped:
        click.echo(shown(f"skipped {ref}: {reason}"))
    for r in counts.rejected:
        click.echo(f"error: {shown(r.id)}: {r.reason}", err=True)
    click.echo(shown(f"{source}: {_summary(counts, len(read.skipped))}"))
    if counts.rejected:
        sys.exit(EXIT_FAILED)


def _summary(counts: LikeCounts, skipped: int) -> str:
    linked = sum(1 for r in counts.results if r.outcome == "added" and r.stored)
    return (
        f"imported {counts.added} ({linked} linked to stored papers),"
        f" already there {counts.unchanged + counts.changed}, skipped {skipped}"
    )


def like_lines(found: list[Like]) -> list[str]:
    """``digest subscribers show``'s lines for a subscriber's likes and dislikes."""
    if not found:
        return ["likes:      (none)"]
    liked = sum(1 for f in found if f.kind == "like")
    lines = [f"likes:      {liked} liked, {len(found) - liked} disliked"]
    for f in found:
        what = f.title or "(no title)"
        lines.append(shown(f"  {f.kind:8} {f.key}  {what}  ({f.origin})"))
    return lines


#: The commands this module adds to ``digest subscribers``.
LIBRARY_COMMANDS: tuple[click.Command, ...] = (like, dislike, unlike, library)
