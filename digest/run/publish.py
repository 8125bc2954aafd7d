"""Writing the feed files: the public pair, and each subscriber's private pair.

``feeds.dir/feed.xml`` and ``feed.atom`` hold every paper of the last ``feeds.days`` listing
dates. A private feed depends on its subscriber's queries, so each distinct pair of
``keywords`` and ``exclude`` is written once, as ``feeds/shared/<hash>.xml|.atom``, and
``feeds/<token>.xml|.atom`` is a symbolic link to it, changed only when the queries change.
A private feed holds the newest ``feeds.private_max_entries`` of its matching papers.
A hundred thousand subscribers then cost one file per distinct query set, not two each.
A subscriber who likes or dislikes papers reads the same file unless a paper of theirs is
among its papers or they have similarity picks to add (:mod:`digest.run.feed_likes`); then
theirs is ``<hash>-<content hash>``, named by what it holds, shared by whoever reads the
same, and written (like any shared file) only when its content changed.

With several sources, ``feeds/<source>.xml`` and ``.atom`` hold one source's papers each (the
public pair holds them all), by the same rules: the same listing dates, updated at their
newest entry, left as they are when unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from digest.compose import FeedMeta, FeedSet, Picked, load_feed_entry, load_feed_stylesheet
from digest.compose.feeds import Reasons
from digest.config import Config
from digest.errors import FeedError
from digest.files import Rewriter, link_atomic, sweep, write_atomic
from digest.models import Paper, Subscriber
from digest.run.feed_likes import FeedLikes, Matching, Own
from digest.select import DayMatcher
from digest.store import Store

SHARED = "shared"
INDEX = ".index.json"
STYLESHEET = "feed.xsl"


def stylesheet_path(config: Config) -> str:
    """The same-origin path of the feeds' XSLT stylesheet: ``/feed.xsl`` under
    ``base_url``'s path (served by ``digest serve``, and written to ``feeds.dir``)."""
    return urlsplit(config.base_url).path.rstrip("/") + "/" + STYLESHEET


def signature(keywords: Sequence[str], exclude: Sequence[str]) -> str:
    """A stable name for a pair of query lists (the same queries in any order, the same
    feed file)."""
    text = json.dumps([sorted(set(keywords)), sorted(set(exclude))], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def recent_entries(
    store: Store, days: int, sources: Collection[str] | None = None
) -> list[tuple[date, Paper]]:
    """The papers of the ``days`` most recent listing dates, newest first, each once; only
    those ``sources`` listed (None: every source's)."""
    entries: list[tuple[date, Paper]] = []
    seen: set[str] = set()
    for day in store.papers.recent_dates(days):
        listing = (
            store.papers.listing(day) if sources is None else store.papers.listing(day, sources)
        )
        if listing is None:
            continue
        for paper in listing.papers:
            if paper.key not in seen:
                seen.add(paper.key)
                entries.append((day, paper))
    return entries


def publish_feeds(
    config: Config,
    store: Store,
    now: datetime,
    batch: int = 1000,
    sources: Sequence[str] = (),
) -> list[Path]:
    """Rewrite the public feeds and every active subscriber's private feed; return the public
    files (with the per-source ones). Private feeds of subscribers no longer active are
    removed.

    ``sources``: the names of the configured sources; with two or more, each also gets its
    own pair, ``feeds/<name>.xml`` and ``.atom`` (see :func:`source_feed_paths`); the files
    of a source no longer named are removed. Raises :class:`FeedError` (which path, why,
    what to do) when ``feeds.dir`` cannot be written: a missing permission, a file where a
    folder should be, a full disk.
    """
    try:
        return _publish(config, store, now, batch, list(dict.fromkeys(sources)))
    except OSError as exc:
        raise feed_error(config.feeds.dir, exc) from exc


def publish_private(config: Config, store: Store, sub: Subscriber, now: datetime) -> Path:
    """Write ``sub``'s private feed pair now, as :func:`publish_feeds` would, and point their
    links at it; return the Atom link. For a subscriber just confirmed, or whose queries just
    changed: their feed exists and follows their queries at once, not at the next pass.

    Raises :class:`FeedError` as :func:`publish_feeds` does.
    """
    try:
        entries = recent_entries(store, config.feeds.days)
        matching = Matching(DayMatcher([paper for _, paper in entries]))
        own = None
        if sub.id is not None:  # their likes and dislikes count at once, not at the next pass
            liking = FeedLikes(config, store, matching, entries, now, reader=sub.id)
            own = liking.own(sub, liking.batch([sub]))
        keys = _wanted(sub, matching, own)
        # Only their papers are rendered: their entries are the same bytes as in a FeedSet
        # of every paper (each entry is rendered on its own).
        feeds = FeedSet(
            [(day, paper) for day, paper in entries if paper.key in keys],
            link=config.base_url + "/",
            updated=now,
            content=load_feed_entry(config.templates_dir),
        )
        private = config.feeds.dir / "feeds"
        shared = private / SHARED
        shared.mkdir(parents=True, exist_ok=True)
        host = urlsplit(config.base_url).hostname or "localhost"
        name, made = _content(feeds, config, sub, matching, host, own)
        _write_pair(feeds, shared, name, made, {}, set(), _write)
        for suffix in (".xml", ".atom"):
            link_atomic(private / (sub.token + suffix), f"{SHARED}/{name}{suffix}")
    except OSError as exc:
        raise feed_error(config.feeds.dir, exc) from exc
    return private / (sub.token + ".atom")


def private_target(sub: Subscriber, suffix: str) -> str:
    """Where ``sub``'s private feed link (``.xml`` or ``.atom``) points when it follows
    their queries, relative to the links' folder."""
    return f"{SHARED}/{signature(sub.keywords, sub.exclude)}{suffix}"


def follows(target: str, sub: Subscriber, suffix: str) -> bool:
    """Whether a private feed link to ``target`` follows ``sub``'s present queries: their
    queries' feed, or one of its variants for readers with likes or dislikes (named
    ``<queries>-<content hash>``, see :func:`_content`)."""
    own = private_target(sub, suffix)
    return target == own or (
        target.startswith(own[: -len(suffix)] + "-") and target.endswith(suffix)
    )


def feed_error(folder: Path, exc: OSError) -> FeedError:
    """``exc`` (raised while writing under ``folder``) as words an operator can act on."""
    reason = exc.strerror or str(exc)
    path = exc.filename if isinstance(exc.filename, str) else None
    if path is not None and os.path.basename(path).startswith("."):
        path = os.path.dirname(path)  # the temp file's folder: the name the operator knows
    if exc.errno == errno.ENOSPC:
        hint = f"free some space on the disk that holds {folder}"
    else:
        hint = (
            f"feeds.dir must be a folder digest can create and write: make it (mkdir -p"
            f" {folder}) and let the user running digest write to it, or set feeds.dir to"
            " another folder in the config file"
        )
    return FeedError(str(folder), reason, path=path, hint=hint)


def source_feed_paths(config: Config, name: str) -> tuple[Path, Path]:
    """Where source ``name``'s feed pair is written (RSS, Atom): ``feeds.dir/feeds/<name>.xml``
    and ``.atom``, served at ``base_url/feeds/<name>.xml`` and ``.atom``."""
    folder = config.feeds.dir / "feeds"
    return folder / f"{name}.xml", folder / f"{name}.atom"


def _publish_sources(
    config: Config, store: Store, now: datetime, names: Sequence[str]
) -> list[Path]:
    """Write each source's feed pair (unless unchanged); return their paths."""
    base, title, days = config.base_url, config.feeds.title, config.feeds.days
    content = load_feed_entry(config.templates_dir)
    written: list[Path] = []
    for name in names:
        feeds = FeedSet(
            recent_entries(store, days, {name}), link=base + "/", updated=now, content=content
        )
        rss, atom = feeds.build(
            FeedMeta(
                title=f"{title}: {name}",
                link=base + "/",
                rss_url=f"{base}/feeds/{name}.xml",
                atom_url=f"{base}/feeds/{name}.atom",
                description=f"{title}: the papers of {name} in the last {days} listing days",
                stylesheet=stylesheet_path(config),
            )
        )
        paths = source_feed_paths(config, name)
        _write_changed(paths[0], rss)
        _write_changed(paths[1], atom)
        written += paths
    return written


def _publish(
    config: Config, store: Store, now: datetime, batch: int, sources: Sequence[str]
) -> list[Path]:
    base = config.base_url
    title = config.feeds.title
    out = config.feeds.dir
    entries = recent_entries(store, config.feeds.days)
    feeds = FeedSet(
        entries, link=base + "/", updated=now, content=load_feed_entry(config.templates_dir)
    )
    rss, atom = feeds.build(
        FeedMeta(
            title=title,
            link=base + "/",
            rss_url=base + "/feed.xml",
            atom_url=base + "/feed.atom",
            description=f"{title}: the papers of the last {config.feeds.days} listing days",
            stylesheet=stylesheet_path(config),
        )
    )
    public = [out / "feed.xml", out / "feed.atom"]
    # An unchanged file is left as it is: its Last-Modified stays too (its ETag, the bytes'
    # hash, would anyway), so readers asking If-Modified-Since get 304s.
    _write_changed(public[0], rss)
    _write_changed(public[1], atom)
    # For a web server serving feeds.dir itself: the page a browser shows of a feed.
    _write_changed(out / STYLESHEET, load_feed_stylesheet(config.templates_dir), durable=False)

    private = out / "feeds"
    shared = private / SHARED
    shared.mkdir(parents=True, exist_ok=True)
    # One source: its feed would be the public one again.
    per_source = sources if len(sources) > 1 else []
    public += _publish_sources(config, store, now, per_source)
    feeds.forget_public()  # the private feeds' entries are made for them
    matching = Matching(DayMatcher([paper for _, paper in entries]))
    # What each shared file held when it was written: an unchanged feed is not written again
    # (its bytes, ETag and date stay; readers polling it get 304s), so a day's run rewrites
    # only the feeds that gained or lost papers.
    index_path = shared / INDEX
    with Rewriter() as rewriter:
        files = SharedFiles(feeds, config, matching, shared, _read_index(index_path), rewriter)
        links = PrivateLinks(private)
        liking = FeedLikes(config, store, matching, entries, now)
        for subs in store.members.active_batches(batch):
            ranked = liking.batch(subs)  # those who like papers: their picks too
            for sub in subs:
                links.point(sub.token, files.name_for(sub, liking.own(sub, ranked)))
        rewriter.write(index_path, json.dumps(files.index, sort_keys=True).encode())
    links.remove_unread(keep=set(per_source))
    _remove_stale(shared, set(files.index))
    return public


class PrivateLinks:
    """The private links of a pass, ``feeds/<token>.xml`` and ``.atom``, each pointed at
    its reader's shared file; the readers of one file share one inode per suffix (hard
    links to its first reader's links, see :func:`link_atomic`): a first run at 100,000
    subscribers makes ~70,000 symbolic links instead of 200,000."""

    def __init__(self, folder: Path) -> None:
        self.folder = os.fspath(folder)
        listing = os.listdir(folder)
        sweep(folder, listing)
        # The stems of the pairs there (a first run makes every link without a look
        # first; 100,000 stems, not 200,000 names); struck off when their reader is seen,
        # so what is left at the end has none.
        self.left = {
            stem
            for stem, dot, suffix in (name.rpartition(".") for name in listing)
            if dot and suffix in ("xml", "atom")
        }
        self._first: dict[str, str] = {}  # shared file -> the token of its first reader

    def point(self, token: str, name: str) -> None:
        """Point ``token``'s two links at the shared pair ``name`` (unless they do)."""
        first = self._first.setdefault(name, token)
        absent = token not in self.left
        self.left.discard(token)
        for suffix in (".xml", ".atom"):
            like = None if first is token else os.path.join(self.folder, first + suffix)
            link, target = os.path.join(self.folder, token + suffix), f"{SHARED}/{name}{suffix}"
            link_atomic(link, target, absent=absent, like=like)

    def remove_unread(self, keep: Collection[str]) -> None:
        """Remove the feed pairs and links listed at the start that no reader of the pass
        pointed at, but those named in ``keep`` (stems: the sources' pairs). A link made
        meanwhile (a subscriber just confirmed, :func:`publish_private`) stays."""
        for stem in self.left - set(keep):
            for suffix in (".xml", ".atom"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.folder, stem + suffix))


class SharedFiles:
    """The shared private feed files of a pass: each written once, and only when its
    content changed since the last pass (``before``: the fingerprints then, by name)."""

    def __init__(
        self,
        feeds: FeedSet,
        config: Config,
        matching: Matching,
        shared: Path,
        before: dict[str, str],
        rewriter: Rewriter,
    ) -> None:
        self.feeds, self.config, self.matching = feeds, config, matching
        self.shared, self.before, self.rewriter = shared, before, rewriter
        self.host = urlsplit(config.base_url).hostname or "localhost"
        with os.scandir(shared) as found:
            self.present = {entry.name for entry in found}
        sweep(shared, self.present)
        self.index: dict[str, str] = {}  # name -> fingerprint, of the files of this pass

    def name_for(self, sub: Subscriber, own: Own | None) -> str:
        """The name of ``sub``'s shared file (written now if it is the first reader's):
        their queries' (``own`` None), or one named by its content."""
        if own is None:
            name = signature(sub.keywords, sub.exclude)
            if name in self.index:
                return name
            made = _content(self.feeds, self.config, sub, self.matching, self.host, None)[1]
        else:  # named by its content: readers of the same content share it
            name, made = _content(self.feeds, self.config, sub, self.matching, self.host, own)
            if name in self.index:
                return name
        self.index[name] = _write_pair(
            self.feeds, self.shared, name, made, self.before, self.present, self.rewriter.write
        )
        return name


def _wanted(sub: Subscriber, matching: Matching, own: Own | None) -> frozenset[str]:
    """The keys of the papers of ``sub``'s private feed."""
    if own is not None:
        return own.wanted
    # Not kept in ``matching``: a pass makes each queries' file once (then its name is
    # found), and keeping every set cost ~95 MB at 100,000 subscribers (26,500 sets).
    keywords, exclude = sorted(set(sub.keywords)), sorted(set(sub.exclude))
    return matching.keys(keywords, exclude)


#: A private feed as it would be written: its description, its entries (chosen by
#: :meth:`FeedSet.choose`), why each is there, and its fingerprint.
Made = tuple[FeedMeta, Sequence[int], Reasons, str]


def _content(
    feeds: FeedSet,
    config: Config,
    sub: Subscriber,
    matching: Matching,
    host: str,
    own: Own | None,
) -> tuple[str, Made]:
    """``sub``'s private feed (``own``: its content when not their queries' feed as it
    is) and its file's name: their queries' signature, or (``own``) that and a dash and
    a hash of the content, so readers of the same content share one file."""
    name = signature(sub.keywords, sub.exclude)
    keywords, exclude = sorted(set(sub.keywords)), sorted(set(sub.exclude))
    about = "; ".join(keywords) or "every paper"
    if exclude:
        about += " (excluding " + "; ".join(exclude) + ")"
    meta = FeedMeta(
        title=f"{config.feeds.title}: your papers",
        link=config.base_url + "/",
        rss_url=None,
        atom_url=None,
        description=f"Papers matching {about}"[:500],
        # One id for every variant of the queries' feed: it stays as the content changes.
        feed_id=f"tag:{host},2026:feed/{name}",
        stylesheet=stylesheet_path(config),
    )
    limit = config.feeds.private_max_entries
    chosen: Sequence[int]
    if own is None:  # by the queries' bitmasks, not a set of their papers' keys
        chosen = matching.chosen(keywords, exclude, feeds.keys, limit)
    else:
        chosen = feeds.choose(own.wanted, limit)
    # Why each paper was picked, said in its entry: which of the queries it matched (none
    # without keywords: every paper is), or which liked paper it is like.
    reasons: dict[str, tuple[str, ...] | Picked] = dict(
        matching.reasons(keywords, map(feeds.keys.__getitem__, chosen))
    )
    for key, why in (own.picked if own is not None else {}).items():
        if key in reasons and not reasons[key]:
            reasons[key] = why
    fingerprint = feeds.fingerprint(meta, chosen, reasons)
    if own is not None:
        name += "-" + fingerprint[:20]
    return name, (meta, chosen, reasons, fingerprint)


def _write_pair(
    feeds: FeedSet,
    shared: Path,
    name: str,
    made: Made,
    before: dict[str, str],
    present: set[str],
    write: Callable[[Path, bytes, bool], None],
) -> str:
    """Write the shared feed pair ``name`` with ``write`` (unless unchanged since
    ``before``, the fingerprints of the last pass, by name: taken out of it, each read
    once, ~7 MB at 100,000 subscribers freed as the pass goes); return its fingerprint.
    ``present``: the folder's listing (``write`` is told which file was not there)."""
    meta, chosen, reasons, fingerprint = made
    rss_name, atom_name = f"{name}.xml", f"{name}.atom"
    if fingerprint != before.pop(name, None) or rss_name not in present or atom_name not in present:
        rss, atom = feeds.build(meta, chosen=chosen, reasons=reasons)
        write(shared / rss_name, rss, rss_name not in present)
        write(shared / atom_name, atom, atom_name not in present)
    return fingerprint


def _write(path: Path, data: bytes, absent: bool = False) -> None:
    """One feed file, atomically (not fsynced: feeds are rebuilt anyway)."""
    write_atomic(path, data, durable=False)


def _write_changed(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` (atomically) unless it holds them already."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:  # not there yet (or unreadable): written
        pass
    write_atomic(path, data, durable=durable)


def _read_index(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):  # none yet, or unreadable: every feed is written
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _remove_stale(folder: Path, keep: set[str]) -> None:
    with os.scandir(folder) as found:
        for entry in found:
            stem, dot, suffix = entry.name.rpartition(".")
            if dot and suffix in ("xml", "atom") and stem not in keep:
                os.unlink(entry.path)
