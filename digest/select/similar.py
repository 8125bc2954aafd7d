"""Similarity to the papers a subscriber likes: the ranker (vectors for papers), profiles.

A :class:`Ranker` turns (title, abstract) texts into unit vectors of one small dense space;
everything downstream (profiles, scores, reasons: :mod:`digest.select.blend`) works on
those vectors only, so an embedding ranker is another implementation of the protocol.
:class:`TfidfRanker` is the default: TF-IDF over title and abstract (scikit-learn), reduced
to :data:`DIMENSIONS` by a truncated SVD (LSA), both fitted once on the stored papers.

How to call it (the store keeps the model and the profiles: ``store.profiles``)::

    ranker = TfidfRanker.fit(texts, version=1)        # or load(stored bytes)
    day = ranker.day(listing.papers)                   # once per listing
    profile = build_profile(ranker, liked_texts)       # once per change of likes
    matches = blend(keyword_matches, profile, day, ...)  # digest.select.blend

Pure: no I/O. Models and profiles round-trip through bytes (numpy arrays, never pickle).
scikit-learn is imported when a ranker is made (it takes a second), not with this module.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from digest.errors import StateError
from digest.models import Paper

Vectors = NDArray[np.float32]

#: The size of the space papers are compared in (the SVD's components).
DIMENSIONS = 128
#: The largest vocabulary kept (terms and bigrams, by frequency): bounds the model's size.
MAX_FEATURES = 2**16
#: A term must occur in this many stored papers (when there are :data:`MIN_DF_FROM` or more)
#: to count: a typo or a name seen once says nothing about what a paper is about.
MIN_DF = 2
MIN_DF_FROM = 200
#: A term in more than this share of the papers ("model", "propose") is ignored.
MAX_DF = 0.5
#: The title counts this many times over its abstract's words.
TITLE_REPEAT = 2
#: How much the mean of the disliked papers is taken from the mean of the liked ones.
DISLIKE_WEIGHT = 0.5
#: The format of :meth:`TfidfRanker.to_bytes` and :meth:`Profile.to_bytes`.
FORMAT = 1

_TAG = re.compile(r"<[^>]{0,200}>")
_ANALYZER = {
    "strip_accents": "unicode",
    "lowercase": True,
    "stop_words": "english",
    "ngram_range": (1, 2),
    "dtype": np.float32,
}


class Liked(Protocol):
    """A paper a subscriber liked or disliked, as ``store.likes.texts_for`` gives it."""

    @property
    def kind(self) -> str: ...  # "like" or "dislike"

    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def abstract(self) -> str: ...


def text_of(title: str, abstract: str) -> str:
    """What the ranker reads of a paper: its title (:data:`TITLE_REPEAT` times, tags out)
    and its abstract."""
    title = _TAG.sub(" ", title or "")
    return " ".join([title] * TITLE_REPEAT + [_TAG.sub(" ", abstract or "")])


class Ranker(Protocol):
    """What ranks papers by similarity: a name, a version (profiles made with another are
    stale) and unit vectors for texts. ``TfidfRanker`` is one; an embedding model is the
    other this seam is for."""

    name: str
    version: int
    papers: int  # how many papers it was fitted on

    def vectors(self, texts: Sequence[str]) -> Vectors:
        """One unit row per text (see :func:`text_of`); a text with no known word: zeros."""
        ...

    def to_bytes(self) -> bytes: ...


class TfidfRanker:
    """TF-IDF (sublinear tf, English stop words, words and bigrams) reduced by LSA.

    Build it with :meth:`fit` on the stored papers' texts, keep it with :meth:`to_bytes`,
    get it back with :func:`load`.
    """

    name = "tfidf"

    def __init__(
        self,
        terms: Sequence[str],
        idf: NDArray[np.float32],
        components: NDArray[np.float32],
        version: int,
        papers: int,
    ) -> None:
        self.terms = tuple(terms)
        self.idf = idf.astype(np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self.version = version
        self.papers = papers
        from sklearn.feature_extraction.text import CountVectorizer  # type: ignore[import-untyped]

        self._counter = CountVectorizer(
            vocabulary={t: i for i, t in enumerate(self.terms)},
            **_ANALYZER,
        )

    @property
    def dimensions(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(
        cls, texts: Sequence[str], version: int = 1, dimensions: int = DIMENSIONS
    ) -> TfidfRanker:
        """The ranker fitted on ``texts`` (the stored papers, see :func:`text_of`).

        Raises :class:`StateError` when the texts have no usable word at all."""
        from sklearn.decomposition import TruncatedSVD  # type: ignore[import-untyped]
        from sklearn.feature_extraction.text import TfidfVectorizer

        min_df = MIN_DF if len(texts) >= MIN_DF_FROM else 1
        max_df = MAX_DF if len(texts) >= MIN_DF_FROM else 1.0
        tfidf = TfidfVectorizer(
            sublinear_tf=True,
            min_df=min_df,
            max_df=max_df,
            max_features=MAX_FEATURES,
            **_ANALYZER,
        )
        try:
            matrix = tfidf.fit_transform(texts)
        except ValueError as exc:  # "empty vocabulary"
            raise StateError(
                f"cannot fit the similarity ranker on {len(texts)} papers: {exc}",
                hint="fetch some listings first (digest run), then try again",
            ) from exc
        terms = tfidf.get_feature_names_out()
        rank = max(1, min(dimensions, matrix.shape[0] - 1, matrix.shape[1] - 1))
        if rank < 2:  # too few papers or words for an SVD: the terms are the space
            components = np.eye(max(1, len(terms)), len(terms), dtype=np.float32)
        else:
            svd = TruncatedSVD(n_components=rank, algorithm="randomized", random_state=0)
            svd.fit(matrix)
            components = svd.components_.astype(np.float32)
        return cls(list(terms), tfidf.idf_.astype(np.float32), components, version, len(texts))

    def tfidf(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The texts' unit TF-IDF rows, as a sparse matrix over :attr:`terms`."""
        from sklearn.preprocessing import normalize  # type: ignore[import-untyped]

        counts = self._counter.transform(texts)
        counts.data = (1.0 + np.log(counts.data)).astype(np.float32)  # sublinear tf
        counts.data *= self.idf[counts.indices]
        unit: NDArray[np.float32] = normalize(counts)
        return unit

    def vectors(self, texts: Sequence[str]) -> Vectors:
        reduced = np.asarray(self.tfidf(texts) @ self.components.T, dtype=np.float32)
        return unit_rows(reduced)

    def to_bytes(self) -> bytes:
        """The model as an ``.npz`` of plain arrays (no pickle)."""
        meta = {"format": FORMAT, "name": self.name, "version": self.version}
        meta["papers"] = self.papers
        out = io.BytesIO()
        np.savez_compressed(
            out,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            terms=np.frombuffer("\n".join(self.terms).encode(), dtype=np.uint8),
            idf=self.idf,
            components=self.components.astype(np.float16),
        )
        return out.getvalue()

    def day(self, papers: Sequence[Paper]) -> Day:
        """The vectors of a day's papers (computed once, shared by every subscriber)."""
        return Day(tuple(papers), self.vectors([text_of(p.title, p.abstract) for p in papers]))


def load(data: bytes) -> TfidfRanker:
    """The ranker :meth:`TfidfRanker.to_bytes` made; raises :class:`StateError` for bytes
    of another format (the store then fits a new one)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes())
            if meta.get("format") != FORMAT or meta.get("name") != TfidfRanker.name:
                raise ValueError(f"format {meta.get('format')} of {meta.get('name')}")
            raw_terms = arrays["terms"].tobytes().decode()
            terms = raw_terms.split("\n") if raw_terms else []
            return TfidfRanker(
                terms,
                arrays["idf"],
                arrays["components"].astype(np.float32),
                int(meta["version"]),
                int(meta["papers"]),
            )
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise StateError(f"the stored similarity model is unreadable: {exc}") from exc


def unit_rows(matrix: NDArray[np.float32]) -> Vectors:
    """``matrix`` with each row scaled to length 1 (rows of zeros stay zeros)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: Vectors = (matrix / norms).astype(np.float32)
    return unit


class Day:
    """A day's papers and their unit vectors (row ``n`` is ``papers[n]``, whose key
    ``number`` maps to ``n``)."""

    __slots__ = ("number", "papers", "vectors")

    def __init__(self, papers: Sequence[Paper], vectors: Vectors) -> None:
        if len(papers) != len(vectors):
            raise ValueError(f"{len(papers)} papers but {len(vectors)} vectors")
        self.papers = tuple(papers)
        self.vectors = vectors
        self.number = {p.key: n for n, p in enumerate(self.papers)}


@dataclass(frozen=True, eq=False)
class Profile:
    """What one subscriber likes, for one ranker version.

    ``centre`` is the unit mean of the liked papers' vectors minus :data:`DISLIKE_WEIGHT`
    times the unit mean of the disliked ones (renormalised); ``liked`` holds the liked
    papers' own vectors (float16), ``titles`` their titles, for the reason of a pick;
    ``keys`` every liked and disliked key (never picked); ``likes_hash`` tells whether the
    likes changed since it was built (:func:`hash_of_likes`).
    """

    version: int
    likes_hash: str
    centre: Vectors
    liked: NDArray[np.float16]
    titles: tuple[str, ...]
    keys: frozenset[str]

    @property
    def has_likes(self) -> bool:
        return bool(self.titles)

    def to_bytes(self) -> bytes:
        """A small header (JSON) then the raw arrays: fast to read back for many subscribers."""
        head = {
            "format": FORMAT,
            "version": self.version,
            "hash": self.likes_hash,
            "titles": list(self.titles),
            "keys": sorted(self.keys),
            "dims": int(self.centre.shape[0]),
        }
        header = json.dumps(head, ensure_ascii=False).encode()
        return b"".join(
            (
                struct.pack("<I", len(header)),
                header,
                self.centre.astype("<f4").tobytes(),
                self.liked.astype("<f2").tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """The profile :meth:`to_bytes` made; raises :class:`StateError` for other bytes."""
        try:
            (size,) = struct.unpack_from("<I", data)
            head = json.loads(data[4 : 4 + size])
            if head["format"] != FORMAT:
                raise ValueError(f"format {head['format']}")
            dims, count = int(head["dims"]), len(head["titles"])
            start = 4 + size
            centre = np.frombuffer(data, "<f4", dims, start).astype(np.float32)
            liked = np.frombuffer(data, "<f2", dims * count, start + 4 * dims)
            return cls(
                int(head["version"]),
                str(head["hash"]),
                centre,
                liked.reshape(count, dims),
                tuple(head["titles"]),
                frozenset(head["keys"]),
            )
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise StateError(f"a stored similarity profile is unreadable: {exc}") from exc


def hash_of_likes(liked: Iterable[tuple[str, str]]) -> str:
    """A digest of a subscriber's ``(kind, key)`` pairs: a profile built for other likes
    (another hash) is rebuilt."""
    joined = "\n".join(sorted(f"{kind} {key}" for kind, key in liked))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def build_profile(ranker: Ranker, liked: Sequence[Liked], likes_hash: str | None = None) -> Profile:
    """The profile of a subscriber who liked (``kind == "like"``) and disliked
    (``"dislike"``) these papers; made with ``ranker``'s vectors of their title and abstract.
    ``likes_hash``: what marks their likes (the store's), else :func:`hash_of_likes`."""
    likes = [p for p in liked if p.kind == "like"]
    dislikes = [p for p in liked if p.kind != "like"]
    texts = [text_of(p.title, p.abstract) for p in (*likes, *dislikes)]
    vectors = ranker.vectors(texts) if texts else np.zeros((0, 1), np.float32)
    dims = int(vectors.shape[1])
    centre = np.zeros(dims, np.float32)
    if likes:
        centre += _unit(vectors[: len(likes)].mean(axis=0))
    if dislikes:
        centre -= DISLIKE_WEIGHT * _unit(vectors[len(likes) :].mean(axis=0))
    return Profile(
        version=ranker.version,
        likes_hash=likes_hash or hash_of_likes((p.kind, p.key) for p in liked),
        centre=_unit(centre),
        liked=vectors[: len(likes)].astype(np.float16),
        titles=tuple(p.title for p in likes),
        keys=frozenset(p.key for p in liked),
    )


def _unit(vector: NDArray[np.float32]) -> Vectors:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).astype(np.float32)
