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
scikit-learn is imported to fit a ranker only (it takes seconds to import): a stored one
reads and transforms texts with numpy and scipy.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import pairwise
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
#: Fitted on fewer papers than this, the model keeps the terms as its space (no SVD).
MIN_SVD_PAPERS = 32
#: The title counts this many times over its abstract's words.
TITLE_REPEAT = 2
#: How much the mean of the disliked papers is taken from the mean of the liked ones.
DISLIKE_WEIGHT = 0.5
#: The format of :meth:`TfidfRanker.to_bytes` and :meth:`Profile.to_bytes`.
FORMAT = 1

_TAG = re.compile(r"<[^>]{0,200}>")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


class Analyzer:
    """A text's terms: lower-cased, accents stripped, words of two letters or more, stop
    words out, then each word and each pair of neighbouring words ("graph neural")."""

    def __init__(self, stop_words: Iterable[str]) -> None:
        self.stop_words = frozenset(stop_words)

    def __call__(self, text: str) -> list[str]:
        text = text.lower()
        if not text.isascii():
            text = "".join(
                c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
            )
        stop = self.stop_words
        words = [w for w in _TOKEN.findall(text) if w not in stop]
        return words + [f"{a} {b}" for a, b in pairwise(words)]


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

    @property
    def dimensions(self) -> int:
        """The length of its vectors."""
        ...

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
        stop_words: Iterable[str],
    ) -> None:
        self.terms = tuple(terms)
        self.idf = idf.astype(np.float32)
        self.components = np.ascontiguousarray(components, dtype=np.float32)
        self.version = version
        self.papers = papers
        self.analyzer = Analyzer(stop_words)
        self._vocabulary = {t: i for i, t in enumerate(self.terms)}

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
        from sklearn.feature_extraction.text import (  # type: ignore[import-untyped]
            ENGLISH_STOP_WORDS,
            TfidfVectorizer,
        )

        analyzer = Analyzer(ENGLISH_STOP_WORDS)
        min_df = MIN_DF if len(texts) >= MIN_DF_FROM else 1
        max_df = MAX_DF if len(texts) >= MIN_DF_FROM else 1.0
        tfidf = TfidfVectorizer(
            sublinear_tf=True,
            min_df=min_df,
            max_df=max_df,
            max_features=MAX_FEATURES,
            analyzer=analyzer,
            dtype=np.float32,
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
        # Too few papers or words for an SVD (a few papers span a space of a few
        # dimensions, where every paper looks alike): the terms are the space.
        if rank < 2 or matrix.shape[0] < MIN_SVD_PAPERS:
            components = np.eye(max(1, len(terms)), len(terms), dtype=np.float32)
        else:
            svd = TruncatedSVD(n_components=rank, algorithm="randomized", random_state=0)
            svd.fit(matrix)
            components = svd.components_.astype(np.float32)
        idf = tfidf.idf_.astype(np.float32)
        return cls(list(terms), idf, components, version, len(texts), analyzer.stop_words)

    def tfidf(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The texts' unit TF-IDF rows, as a sparse matrix over :attr:`terms`."""
        from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

        vocabulary, analyze = self._vocabulary, self.analyzer
        indptr: list[int] = [0]
        indices: list[int] = []
        counts: list[int] = []
        for text in texts:
            found = Counter(n for n in map(vocabulary.get, analyze(text)) if n is not None)
            indices += found.keys()
            counts += found.values()
            indptr.append(len(indices))
        cols = np.asarray(indices, dtype=np.int32)
        data = (1.0 + np.log(np.asarray(counts, dtype=np.float32))) * self.idf[cols]  # sublinear
        rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(texts)))
        norms[norms == 0] = 1.0
        data = (data / norms[rows]).astype(np.float32)
        shape = (len(texts), len(self.terms))
        unit: NDArray[np.float32] = csr_matrix((data, cols, np.asarray(indptr)), shape=shape)
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
            stop_words=np.frombuffer(" ".join(sorted(self.analyzer.stop_words)).encode(), np.uint8),
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
                arrays["stop_words"].tobytes().decode().split(),
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


class Profile:
    """What one subscriber likes, for one ranker version.

    ``centre`` is the unit mean of the liked papers' vectors minus :data:`DISLIKE_WEIGHT`
    times the unit mean of the disliked ones (renormalised); ``liked`` holds the liked
    papers' own vectors (stored as float16), ``titles`` their titles, for the reason of a pick;
    ``keys`` every liked and disliked key (never picked); ``likes_hash`` tells whether the
    likes changed since it was built (:func:`hash_of_likes`).

    Read back with :meth:`from_bytes`, only the header and ``centre`` are decoded at once:
    ``liked``, ``titles`` and ``keys`` when first asked for (a run reads a hundred thousand
    profiles; ``liked`` is wanted only by those who get similarity picks).
    """

    __slots__ = (
        "_at",
        "_data",
        "_keys",
        "_liked",
        "_titles",
        "centre",
        "count",
        "likes_hash",
        "missing",
        "version",
    )

    def __init__(
        self,
        version: int,
        likes_hash: str,
        centre: Vectors,
        liked: Vectors,
        titles: tuple[str, ...],
        keys: frozenset[str],
        missing: int = 0,  # likes it was made without: no text for them yet
    ) -> None:
        self.version = version
        self.likes_hash = likes_hash
        self.centre = centre
        self.missing = missing
        self.count = len(titles)  # of liked papers
        self._liked: Vectors | None = liked
        self._titles: tuple[str, ...] | None = titles
        self._keys: frozenset[str] | None = keys
        self._data = b""
        self._at = (0, 0, 0, 0)  # where liked, keys, titles start and end in _data

    @property
    def has_likes(self) -> bool:
        return self.count > 0

    @property
    def liked(self) -> Vectors:
        if self._liked is None:
            dims, (at, _, _, _) = len(self.centre), self._at
            half = np.frombuffer(self._data, "<u2", dims * self.count, at)
            self._liked = _HALF.take(half).reshape(self.count, dims)  # float16 to float32
        return self._liked

    @property
    def titles(self) -> tuple[str, ...]:
        if self._titles is None:
            _, _, at, end = self._at
            text = self._data[at:end].decode()
            self._titles = tuple(text.split("\n")) if self.count else ()
        return self._titles

    @property
    def keys(self) -> frozenset[str]:
        if self._keys is None:
            _, at, end, _ = self._at
            text = self._data[at:end].decode()
            self._keys = frozenset(text.split("\n")) if text else frozenset()
        return self._keys

    def to_bytes(self) -> bytes:
        """A fixed header, the hash, the two arrays, then the keys and the titles (UTF-8,
        one a line): read back in microseconds, for a hundred thousand subscribers a run."""
        keys = "\n".join(sorted(self.keys)).encode()
        titles = "\n".join(self.titles).encode()
        dims, count = int(self.centre.shape[0]), self.count
        head = _HEAD.pack(FORMAT, self.version, dims, count, self.missing, len(keys), len(titles))
        return b"".join(
            (
                head,
                self.likes_hash.encode("ascii").ljust(_HASH, b" ")[:_HASH],
                self.centre.astype("<f4").tobytes(),
                self.liked.astype("<f2").tobytes(),
                keys,
                titles,
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """The profile :meth:`to_bytes` made; raises :class:`StateError` for other bytes
        (of a wrong size, or whose keys or titles are not UTF-8)."""
        try:
            form, version, dims, count, missing, keys_size, titles_size = _HEAD.unpack_from(data)
            if form != FORMAT:
                raise ValueError(f"format {form}")
            at = _HEAD.size + _HASH
            centre = np.frombuffer(data, "<f4", dims, at)  # read-only, like the bytes
            liked_at = at + 4 * dims
            keys_at = liked_at + 2 * dims * count
            titles_at = keys_at + keys_size
            end = titles_at + titles_size
            if end != len(data):
                raise ValueError(f"{len(data)} bytes, not {end}")
            data[keys_at:end].decode()  # fails here, not when a pick wants its reason
            profile = cls(
                version,
                data[_HEAD.size : at].decode("ascii").rstrip(),
                centre,
                centre[:0],
                (),
                frozenset(),
                missing,
            )
        except (struct.error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise StateError(f"a stored similarity profile is unreadable: {exc}") from exc
        profile.count = count
        profile._liked = profile._titles = profile._keys = None
        profile._data, profile._at = data, (liked_at, keys_at, titles_at, end)
        return profile


#: Every float16 as float32 (by its bits): ``take`` converts faster than ``astype``.
_HALF = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
_HEAD = struct.Struct("<HIHHHII")  # format, version, dimensions, likes, missing, sizes
_HASH = 32


def hash_of_likes(liked: Iterable[tuple[str, str]]) -> str:
    """A digest of a subscriber's ``(kind, key)`` pairs: a profile built for other likes
    (another hash) is rebuilt."""
    joined = "\n".join(sorted(f"{kind} {key}" for kind, key in liked))
    return hashlib.sha256(joined.encode()).hexdigest()[:32]


def build_profile(
    ranker: Ranker, liked: Sequence[Liked], likes_hash: str | None = None, missing: int = 0
) -> Profile:
    """The profile of a subscriber who liked (``kind == "like"``) and disliked
    (``"dislike"``) these papers; made with ``ranker``'s vectors of their title and abstract.
    ``likes_hash``: what marks their likes (the store's), else :func:`hash_of_likes`;
    ``missing``: how many of their likes had no text (the store looks again later)."""
    likes = [p for p in liked if p.kind == "like"]
    dislikes = [p for p in liked if p.kind != "like"]
    texts = [text_of(p.title, p.abstract) for p in (*likes, *dislikes)]
    vectors = ranker.vectors(texts) if texts else np.zeros((0, ranker.dimensions), np.float32)
    return profile_of(
        ranker.version,
        likes_hash or hash_of_likes((p.kind, p.key) for p in liked),
        vectors[: len(likes)],
        vectors[len(likes) :],
        tuple(p.title for p in likes),
        frozenset(p.key for p in liked),
        missing,
    )


def profile_of(
    version: int,
    likes_hash: str,
    liked: Vectors,
    disliked: Vectors,
    titles: tuple[str, ...],
    keys: frozenset[str],
    missing: int = 0,
) -> Profile:
    """The profile of the papers whose vectors are ``liked`` (titled ``titles``) and
    ``disliked``: the unit mean of the likes minus :data:`DISLIKE_WEIGHT` times the unit
    mean of the dislikes, renormalised."""
    centre = np.zeros(liked.shape[1], np.float32)
    if len(liked):
        centre += _unit(liked.mean(axis=0))
    if len(disliked):
        centre -= DISLIKE_WEIGHT * _unit(disliked.mean(axis=0))
    titles = tuple(" ".join(t.split()) for t in titles)  # one line each (a feed's may wrap)
    keys = frozenset(k.replace("\n", " ") for k in keys)
    kept = liked.astype(np.float16).astype(np.float32)  # as stored: equal after a round trip
    return Profile(version, likes_hash, _unit(centre), kept, titles, keys, min(missing, 65535))


def _unit(vector: NDArray[np.float32]) -> Vectors:
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm else vector).astype(np.float32)
