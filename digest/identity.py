"""One paper, one identity: the keys a paper is known by, and merging two records of one paper.

A paper's key is, in order: its arXiv id without version; else its DOI (case-folded,
``doi:`` + the bare DOI); else its canonical link (``link:`` + host and path, without
scheme, ``www.``, trailing slash or tracking parameters); else ``title:`` + a hash of its
folded title and its first author's surname. :func:`identities` gives every key a record
can be known by (the store keeps them as aliases of the paper's key), so a paper met first
under its DOI and later under its arXiv id stays one paper.

Pure: no I/O. Papers stored before this module keep their old keys (``title:`` + the
folded title); the store maps their new identities to them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.models import Paper, arxiv_base_id
from digest.words import normalise

#: arXiv's own DOIs name the arXiv id: ``10.48550/arXiv.2503.01234``.
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\.(.+)$", re.I)
#: An arXiv id inside a link: ``arxiv.org/abs/2503.01234v2``, ``/pdf/…``, ``export.``…
_ARXIV_LINK = re.compile(
    r"(?:^|[/.])arxiv\.org/(?:abs|pdf|html)/([a-z\-]+(?:\.[a-z]{2})?/\d{7}|\d{4}\.\d{4,5})"
    r"(?:v\d+)?(?:\.pdf)?/?$",
    re.I,
)
_OAI = re.compile(r"^oai:arxiv\.org:(.+)$", re.I)
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.I)
_DOI = re.compile(r"^10\.\d{4,9}/\S+$")
#: Query parameters that say where a click came from, not what it points to.
_TRACKING = re.compile(
    r"^(?:utm_.*|fbclid|gclid|dclid|mc_cid|mc_eid|_hsenc|_hsmi|ref|ref_src|source|rss|"
    r"campaign|cmpid|icid|ito|spm|s_cid|yclid|igshid|share|sharing|feature)$",
    re.I,
)
_VERSION = re.compile(r"v(\d+)$", re.I)


def arxiv_id_of(*candidates: str | None) -> str | None:
    """The first arXiv id (without version) found in ``candidates``: a bare id
    (``2503.01234v2``, ``arXiv:2503.01234``, ``hep-th/9901001``), an abs/pdf/html link,
    an OAI guid (``oai:arXiv.org:2503.01234v1``) or an arXiv DOI."""
    for raw in candidates:
        if not raw:
            continue
        text = raw.strip()
        found = (
            arxiv_base_id(text)
            or _from_match(_OAI.match(text))
            or _from_match(_ARXIV_DOI.match(_DOI_PREFIX.sub("", text)))
            or _from_link(text)
        )
        if found:
            return found
    return None


def arxiv_version(raw: str | None) -> int | None:
    """The version of an arXiv id or guid (``oai:arXiv.org:2503.01234v3`` -> 3), or None."""
    if not raw:
        return None
    m = _VERSION.search(raw.strip().removesuffix(".pdf"))
    return int(m.group(1)) if m else None


def _from_match(m: re.Match[str] | None) -> str | None:
    return arxiv_base_id(m.group(1)) if m else None


def _from_link(text: str) -> str | None:
    m = _ARXIV_LINK.search(text.split("?", 1)[0].split("#", 1)[0])
    return arxiv_base_id(m.group(1)) if m else None


def doi_of(raw: str | None) -> str | None:
    """The bare DOI, case-folded (``https://doi.org/10.1000/ABC`` -> ``10.1000/abc``), or
    None when ``raw`` is not one."""
    if not raw:
        return None
    text = _DOI_PREFIX.sub("", raw.strip()).strip().casefold()
    return text if _DOI.match(text) else None


def canonical_link(url: str | None) -> str | None:
    """A link as one page, however it was shared: no scheme, no ``www.``, lower-case host,
    no trailing slash, no fragment, no tracking parameters (``utm_*`` and friends), the
    rest of the query sorted. None for a link that is not http(s)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    host = host.removeprefix("www.")
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    )
    path = parts.path.rstrip("/")
    return urlunsplit(("", host, path, urlencode(query), "")).removeprefix("//")


def surname(author: str) -> str:
    """The surname of an author as listings write them: ``Ada Lovelace`` and ``Lovelace,
    Ada`` both give ``lovelace`` (folded)."""
    name = author.split(",", 1)[0] if "," in author else (author.split() or [""])[-1]
    return normalise(name)


def title_key(title: str, authors: Sequence[str] = ()) -> str:
    """``title:`` + a hash of the folded, punctuation-free title and first author's surname."""
    basis = normalise(title) + "\x1f" + (surname(authors[0]) if authors else "")
    return "title:" + hashlib.sha256(basis.encode()).hexdigest()[:24]


def identities(
    *,
    arxiv_id: str | None = None,
    doi: str | None = None,
    link: str | None = None,
    title: str = "",
    authors: Sequence[str] = (),
) -> list[str]:
    """Every key a record is known by, best first: arXiv id, ``doi:``, ``link:``, ``title:``.

    The DOI of an arXiv paper (``10.48550/arXiv.…``) and an arXiv link count as its arXiv
    id; the first element is :func:`key_of`'s answer.
    """
    keys: list[str] = []
    base = arxiv_id_of(arxiv_id, doi, link)
    if base:
        keys.append(base)
    bare = doi_of(doi)
    if bare and not _ARXIV_DOI.match(bare):
        keys.append("doi:" + bare)
    canon = canonical_link(link)
    if canon and not _from_link(link or ""):
        keys.append("link:" + canon)
    if normalise(title):
        keys.append(title_key(title, authors))
    return keys


def key_of(
    *,
    arxiv_id: str | None = None,
    doi: str | None = None,
    link: str | None = None,
    title: str = "",
    authors: Sequence[str] = (),
) -> str:
    """A paper's key (see the module's docstring); ``title:`` of an empty hash when a record
    has nothing at all (the sources skip such records before asking)."""
    found = identities(arxiv_id=arxiv_id, doi=doi, link=link, title=title, authors=authors)
    return found[0] if found else title_key(title, authors)


def paper_identities(paper: Paper) -> list[str]:
    """:func:`identities` of a stored :class:`Paper`, its own key first."""
    found = identities(
        arxiv_id=paper.arxiv_id,
        doi=paper.doi,
        link=paper.link,
        title=paper.title,
        authors=paper.authors,
    )
    return [paper.key, *(k for k in found if k != paper.key)]


def merge(first: Paper, second: Paper) -> Paper:
    """One record of a paper two sources (or one source twice) listed: ``first``'s key and
    fields, completed by ``second``'s; the highest upvotes and comment count, the longest
    abstract, the categories and sources of both (``first``'s first), the newest version."""
    abstract = first.abstract if len(first.abstract) >= len(second.abstract) else second.abstract
    return replace(
        first,
        title=first.title or second.title,
        abstract=abstract,
        authors=first.authors or second.authors,
        arxiv_id=first.arxiv_id or second.arxiv_id,
        upvotes=max(first.upvotes, second.upvotes),
        published=first.published or second.published,
        num_comments=max(first.num_comments, second.num_comments),
        thumbnail=first.thumbnail or second.thumbnail,
        ai_summary=first.ai_summary or second.ai_summary,
        ai_keywords=first.ai_keywords or second.ai_keywords,
        github_repo=first.github_repo or second.github_repo,
        project_page=first.project_page or second.project_page,
        doi=first.doi or second.doi,
        link=first.link or second.link,
        categories=_union(first.categories, second.categories),
        sources=_union(first.sources, second.sources),
        version=max((v for v in (first.version, second.version) if v), default=None),
    )


def same_paper(a: Paper, b: Paper) -> bool:
    """Whether two records that share an identity may be one paper: not when they carry two
    different arXiv ids (in an id field, an arXiv DOI or link), nor (one lacking an arXiv
    id) two different DOIs other than arXiv's. Two papers can share
    a title and a first author's surname ("A Survey" by two Wangs): the title hash alone
    must not merge them."""
    arxiv_a = arxiv_id_of(a.arxiv_id, a.doi, a.link)
    arxiv_b = arxiv_id_of(b.arxiv_id, b.doi, b.link)
    if arxiv_a and arxiv_b:
        return arxiv_a == arxiv_b
    doi_a, doi_b = doi_of(a.doi), doi_of(b.doi)
    if doi_a and doi_b and not (_ARXIV_DOI.match(doi_a) or _ARXIV_DOI.match(doi_b)):
        return doi_a == doi_b
    return True


def dedupe(papers: Iterable[Paper]) -> list[Paper]:
    """``papers`` with the records of one paper merged into the first (by any shared
    identity, see :func:`same_paper`), in the order of their first appearance."""
    out: list[Paper] = []
    where: dict[str, int] = {}
    for paper in papers:
        keys = paper_identities(paper)
        index = next(
            (where[k] for k in keys if k in where and same_paper(out[where[k]], paper)), None
        )
        if index is None:
            index = len(out)
            out.append(paper)
        else:
            out[index] = merge(out[index], paper)
            keys += paper_identities(out[index])  # the merged record's, too
        for k in keys:
            where.setdefault(k, index)
    return out


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)
