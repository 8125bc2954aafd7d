"""How good similarity ranking is: precision@10, recall@30 and nDCG@10 on invented papers.

python bench/relevance.py                 # the table of bench/README.md (about a minute)
python bench/relevance.py --readers 100   # quicker
python bench/relevance.py --embedders none   # without the embedding rankers (bench/embedders.py)

The fixture generator below writes papers from eight topics whose vocabularies overlap
(each topic shares words with a neighbour, every paper uses the common words of the field,
and each topic says some things two ways: "graph neural network" or "message passing
network"). Thirty stored days fit the ranker; five held-out days are ranked for simulated
readers whose likes (and a few dislikes) come from one or two topics. A paper is relevant
to a reader when its topic is one of theirs. Rows: keywords only (a reasonable query per
topic, through digest.select's real matcher), TF-IDF likes (the ranker, and variants),
keywords + likes (digest.select.blend); and, when their packages are installed, the same rows
for the sentence-embedding rankers of bench/embedders.py, alone and joined with TF-IDF.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.embedders import DayRanker, Joined, available
from digest.models import Match, Paper
from digest.select import DayMatcher
from digest.select.blend import blend, similarities
from digest.select.similar import DIMENSIONS, Profile, TfidfRanker, build_profile, text_of


def words(text: str) -> list[str]:
    return text.split()


# Each topic: its own words, the phrases it says two ways (either side), its neighbour.
TOPICS: dict[str, tuple[list[str], list[tuple[str, str]], str]] = {
    "gnn": (
        words(
            "node edge graph neighbour aggregation molecular molecule atom bond heterophily "
            "oversmoothing link prediction subgraph citation benchmark spectral laplacian"
        ),
        [
            ("graph neural network", "message passing network"),
            ("node embedding", "vertex representation"),
            ("graph transformer", "attention over neighbourhoods"),
        ],
        "drug",
    ),
    "drug": (
        words(
            "molecule molecular protein ligand binding docking drug chemical compound "
            "toxicity assay pocket affinity conformer atom bond"
        ),
        [
            ("drug discovery", "therapeutic design"),
            ("protein structure", "folded chain geometry"),
            ("binding affinity", "docking score"),
        ],
        "gnn",
    ),
    "diffusion": (
        words(
            "denoising noise schedule sampler sampling score image pixel latent guidance "
            "synthesis generative fidelity step distillation"
        ),
        [
            ("diffusion model", "score-based generative model"),
            ("text-to-image generation", "prompt-conditioned image synthesis"),
            ("classifier-free guidance", "unconditional mixing"),
        ],
        "vision",
    ),
    "vision": (
        words(
            "image pixel detection segmentation object bounding box backbone convolution "
            "resolution camera scene recognition patch"
        ),
        [
            ("object detection", "localising instances"),
            ("semantic segmentation", "dense labelling"),
            ("vision transformer", "patch attention backbone"),
        ],
        "diffusion",
    ),
    "rag": (
        words(
            "retrieval retriever passage document corpus index query grounding hallucination "
            "citation question answering knowledge context"
        ),
        [
            ("retrieval-augmented generation", "grounded generation with a document store"),
            ("dense retrieval", "embedding-based search"),
            ("open-domain question answering", "answering from a corpus"),
        ],
        "llm",
    ),
    "llm": (
        words(
            "token prompt reasoning instruction tuning alignment preference context chain "
            "decoder pretraining scaling benchmark hallucination"
        ),
        [
            ("large language model", "foundation text model"),
            ("chain-of-thought prompting", "step-by-step rationales"),
            ("instruction tuning", "supervised finetuning on instructions"),
        ],
        "rag",
    ),
    "rl": (
        words(
            "reward policy agent environment exploration value return trajectory episode "
            "actor critic offline simulator control"
        ),
        [
            ("reinforcement learning", "trial-and-error policy optimisation"),
            ("policy gradient", "likelihood-ratio update"),
            ("offline reinforcement learning", "learning from logged trajectories"),
        ],
        "robot",
    ),
    "robot": (
        words(
            "robot manipulation grasp gripper locomotion legged arm sensor simulator control "
            "trajectory teleoperation tactile navigation"
        ),
        [
            ("robot manipulation", "dexterous handling"),
            ("sim-to-real transfer", "bridging the reality gap"),
            ("imitation learning", "learning from demonstrations"),
        ],
        "rl",
    ),
}
COMMON = words(
    "we propose method approach results show experiments demonstrate performance novel "
    "framework model learning training data dataset evaluation task tasks baseline "
    "baselines state art significantly improves efficient robust large scale analysis "
    "study paper present introduce existing prior work challenge problem setting"
)
FILLER = words("the a of and to in for with on that by is are this our which from as")

#: The similarity threshold recommended (``like_threshold``): see the threshold table.
THRESHOLD = 0.35

#: One query per topic, as a reader would type it (one side of each pair only).
QUERIES = {
    "gnn": ['"graph neural network"', "subgraph OR heterophily"],
    "drug": ['"drug discovery"', '"binding affinity"'],
    "diffusion": ['"diffusion model"', "denoising"],
    "vision": ['"object detection"', '"semantic segmentation"'],
    "rag": ['"retrieval-augmented generation"', '"dense retrieval"'],
    "llm": ['"large language model"', '"instruction tuning"'],
    "rl": ['"reinforcement learning"', '"policy gradient"'],
    "robot": ['"robot manipulation"', "grasp"],
}


def make_paper(rng: random.Random, key: str, topic: str, other: str | None = None) -> Paper:
    """One invented paper of ``topic``: a few of its words among many common ones, many of
    its neighbour's, and (a cross-topic paper) some of ``other``'s."""

    def own(t: str) -> str:
        words, pairs, neighbour = TOPICS[t]
        r = rng.random()
        if r < 0.2:
            return rng.choice(rng.choice(pairs))
        if r < 0.6:
            return rng.choice(words)
        n_words, n_pairs, _ = TOPICS[neighbour]  # overlapping vocabularies
        return rng.choice(n_words) if r < 0.9 else rng.choice(rng.choice(n_pairs))

    def topical() -> str:
        return own(other if other and rng.random() < 0.4 else topic)

    title = " ".join(
        [topical() for _ in range(rng.randint(1, 3))] + rng.sample(COMMON, rng.randint(2, 4))
    )
    abstract: list[str] = []
    for _ in range(rng.randint(90, 170)):
        r = rng.random()
        abstract.append(
            topical() if r < 0.12 else rng.choice(COMMON) if r < 0.55 else rng.choice(FILLER)
        )
    return Paper(key=key, title=title.capitalize(), abstract=" ".join(abstract) + ".")


@dataclass(frozen=True)
class Corpus:
    stored: list[tuple[Paper, str]]  # (paper, topic)
    days: list[list[tuple[Paper, str]]]  # held-out days


def make_corpus(seed: int, stored_days: int = 30, held_days: int = 5, per_day: int = 400) -> Corpus:
    rng = random.Random(seed)
    names = list(TOPICS)
    weights = [1.6, 0.8, 1.4, 1.2, 1.0, 1.8, 0.9, 0.7]  # some topics are busier

    def day(d: int) -> list[tuple[Paper, str]]:
        topics = rng.choices(names, weights, k=per_day)
        return [
            (make_paper(rng, f"26{d:02d}.{i:05d}", t, _other(rng, names, t)), t)
            for i, t in enumerate(topics)
        ]

    stored = [p for d in range(stored_days) for p in day(d)]
    return Corpus(stored, [day(stored_days + d) for d in range(held_days)])


def _other(rng: random.Random, names: list[str], topic: str) -> str | None:
    """A quarter of the papers are cross-topic: another topic's words mixed in."""
    return rng.choice([n for n in names if n != topic]) if rng.random() < 0.25 else None


@dataclass(frozen=True)
class Reader:
    topics: tuple[str, ...]
    liked: tuple[tuple[str, Paper], ...]  # (kind, paper)


@dataclass(frozen=True)
class Like:
    kind: str
    key: str
    title: str
    abstract: str


def make_readers(corpus: Corpus, count: int, seed: int) -> list[Reader]:
    rng = random.Random(seed)
    by_topic: dict[str, list[Paper]] = {}
    for p, t in corpus.stored:
        by_topic.setdefault(t, []).append(p)
    out = []
    for _ in range(count):
        topics = tuple(rng.sample(list(TOPICS), 1 if rng.random() < 0.6 else 2))
        n = rng.randint(5, 30)
        liked = [("like", rng.choice(by_topic[rng.choice(topics)])) for _ in range(n)]
        for i in range(len(liked)):  # one like in ten is off-topic: a curious click
            if rng.random() < 0.1:
                liked[i] = ("like", rng.choice(corpus.stored)[0])
        if rng.random() < 0.3:  # a few dislikes, from a neighbouring topic
            near = TOPICS[topics[0]][2]
            liked += [("dislike", rng.choice(by_topic[near])) for _ in range(rng.randint(1, 4))]
        out.append(Reader(topics, tuple(liked)))
    return out


def metrics(ranked: Sequence[str], relevant: set[str]) -> tuple[float, float, float]:
    """precision@10, recall@30, nDCG@10 of ``ranked`` keys (a shorter list counts misses)."""
    top = [k in relevant for k in ranked[:10]]
    precision = sum(top) / 10
    recall = sum(k in relevant for k in ranked[:30]) / max(1, len(relevant))
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(top) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return precision, recall, dcg / ideal if ideal else 0.0


Method = Callable[[Reader, int], list[str]]


def evaluate(
    readers: Sequence[Reader], days: Sequence[list[tuple[Paper, str]]], method: Method
) -> tuple[float, float, float]:
    totals = np.zeros(3)
    n = 0
    for r in readers:
        for d, day in enumerate(days):
            relevant = {p.key for p, t in day if t in r.topics}
            totals += metrics(method(r, d), relevant)
            n += 1
    p, rc, nd = totals / n
    return float(p), float(rc), float(nd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--embedders",
        default="all",
        help="embedding rankers to measure, comma-separated (wordllama,minilm), or none",
    )
    args = parser.parse_args()
    corpus = make_corpus(args.seed)
    readers = make_readers(corpus, args.readers, args.seed + 1)
    texts = [text_of(p.title, p.abstract) for p, _ in corpus.stored]
    days = [[p for p, _ in day] for day in corpus.days]
    matchers = [DayMatcher(day) for day in days]
    base = np.mean(
        [sum(t in r.topics for _, t in day) / len(day) for r in readers for day in corpus.days]
    )
    print(
        f"{len(corpus.stored):,} stored papers, {len(days)} held-out days of {len(days[0])}, "
        f"{len(readers)} readers (base rate of relevant papers {base:.3f})\n"
    )
    rows: list[tuple[str, tuple[float, float, float], str]] = []

    def keywords(r: Reader, d: int) -> list[str]:
        queries = [q for t in r.topics for q in QUERIES[t]]
        return [m.paper.key for m in matchers[d].select(queries)]

    rows.append(("keywords only", evaluate(readers, corpus.days, keywords), ""))
    rankers = {}
    for dims in (64, DIMENSIONS, 256):
        started = time.perf_counter()
        rankers[dims] = TfidfRanker.fit(texts, dimensions=dims)
        fitted = time.perf_counter() - started
        results = _likes_rows(rankers[dims], readers, corpus, days, matchers)
        for name, value in results:
            rows.append((f"{name} (LSA {dims})", value, f"fit {fitted:.1f} s"))
    rows.append(("TF-IDF likes (no LSA)", _unreduced(texts, readers, corpus, days), "reference"))
    rows += _embedding_rows(args.embedders, texts, rankers[DIMENSIONS], readers, corpus, matchers)
    print(f"{'ranking':48} {'P@10':>6} {'R@30':>6} {'nDCG@10':>8}  note")
    for name, (p, rc, nd), note in rows:
        print(f"{name:48} {p:6.3f} {rc:6.3f} {nd:8.3f}  {note}")
    ranked = next(v for n, v, _ in rows if n == f"TF-IDF likes, ranked (LSA {DIMENSIONS})")
    ratio = ranked[0] / base
    print(f"\nlikes alone (LSA {DIMENSIONS}): P@10 {ranked[0]:.3f} = {ratio:.1f}x the base rate")
    _thresholds(rankers[DIMENSIONS], readers, corpus, days)


def _embedding_rows(
    wanted: str,
    texts: list[str],
    tfidf: TfidfRanker,
    readers: Sequence[Reader],
    corpus: Corpus,
    matchers: Sequence[DayMatcher],
) -> list[tuple[str, tuple[float, float, float], str]]:
    """The likes rows of each embedding ranker asked for and installed, then of it joined
    with TF-IDF (the default ranker): :data:`JOINED_SHARE` of the similarity from TF-IDF."""
    makers, missing = available()
    names = list(makers) + list(missing) if wanted == "all" else wanted.split(",")
    days = [[p for p, _ in day] for day in corpus.days]
    rows: list[tuple[str, tuple[float, float, float], str]] = []
    for name in [n.strip() for n in names if n.strip() and n.strip() != "none"]:
        if name not in makers:
            print(f"embedding ranker {name}: {missing.get(name, 'unknown')}", file=sys.stderr)
            continue
        started = time.perf_counter()
        ranker = makers[name](texts)
        for row, value in _likes_rows(ranker, readers, corpus, days, matchers, name):
            rows.append((row, value, f"{time.perf_counter() - started:.0f} s"))
        joined = Joined(tfidf, ranker, JOINED_SHARE)
        label = f"TF-IDF {JOINED_SHARE} + {name}"
        for row, value in _likes_rows(joined, readers, corpus, days, matchers, label):
            rows.append((row, value, "joined"))
    return rows


#: In the joined rows, the share of the similarity taken from TF-IDF (0.5 ranked worse).
JOINED_SHARE = 0.7


def _profiles(ranker: DayRanker, readers: Sequence[Reader]) -> list[Profile]:
    return [
        build_profile(ranker, [Like(k, p.key, p.title, p.abstract) for k, p in r.liked])
        for r in readers
    ]


def _likes_rows(
    ranker: DayRanker,
    readers: Sequence[Reader],
    corpus: Corpus,
    days: Sequence[list[Paper]],
    matchers: Sequence[DayMatcher],
    label: str = "TF-IDF",
) -> list[tuple[str, tuple[float, float, float]]]:
    profiles = _profiles(ranker, readers)
    index = {id(r): i for i, r in enumerate(readers)}
    vectors = [ranker.day(day) for day in days]
    scores = [similarities(profiles, v) for v in vectors]

    def likes(r: Reader, d: int) -> list[str]:
        row = scores[d][index[id(r)]]
        return [days[d][n].key for n in np.argsort(-row, kind="stable")[:30]]

    def picks(r: Reader, d: int) -> list[str]:  # as a digest with likes only gets them
        i = index[id(r)]
        out = blend([], profiles[i], vectors[d], has_keywords=False, **product(scores[d][i]))
        return [m.paper.key for m in out]

    def both(r: Reader, d: int) -> list[str]:
        i = index[id(r)]
        queries = [q for t in r.topics for q in QUERIES[t]]
        kw: list[Match] = matchers[d].select(queries)
        out = blend(kw, profiles[i], vectors[d], has_keywords=True, **product(scores[d][i]))
        return [m.paper.key for m in out]

    def product(row: NDArray[np.float32]) -> dict[str, Any]:
        return {"threshold": THRESHOLD, "cap": 30, "scores": row}

    both_label = "likes" if label == "TF-IDF" else f"{label} likes"

    return [
        (f"{label} likes, ranked", evaluate(readers, corpus.days, likes)),
        (f"{label} likes, >= {THRESHOLD}", evaluate(readers, corpus.days, picks)),
        (f"keywords + {both_label}, >= {THRESHOLD}", evaluate(readers, corpus.days, both)),
    ]


def _unreduced(
    texts: list[str], readers: Sequence[Reader], corpus: Corpus, days: Sequence[list[Paper]]
) -> tuple[float, float, float]:
    """The same TF-IDF, unreduced: exact cosines to the mean of the likes, for reference."""
    full = TfidfRanker.fit(texts, dimensions=2)  # its TF-IDF only: the LSA is not used
    centres = []
    for r in readers:
        likes = [p for k, p in r.liked if k == "like"]
        m = full.tfidf([text_of(p.title, p.abstract) for p in likes]).mean(axis=0)
        centres.append(np.asarray(m).ravel())
    day_tfidf = [full.tfidf([text_of(p.title, p.abstract) for p in day]) for day in days]
    index = {id(r): i for i, r in enumerate(readers)}

    def rank(r: Reader, d: int) -> list[str]:
        row = day_tfidf[d] @ centres[index[id(r)]]
        return [days[d][n].key for n in np.argsort(-np.asarray(row).ravel(), kind="stable")[:30]]

    return evaluate(readers, corpus.days, rank)


def _thresholds(
    ranker: TfidfRanker, readers: Sequence[Reader], corpus: Corpus, days: Sequence[list[Paper]]
) -> None:
    """For each threshold: picks a day (mean, at most 50) and the share of them relevant."""
    profiles = _profiles(ranker, readers)
    print(f"\n{'threshold':>9} {'picks/day':>9} {'precision':>9}  (likes alone, default ranker)")
    for threshold in (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5):
        picked = hits = 0
        for d, day in enumerate(days):
            scores = similarities(profiles, ranker.day(day))
            for i, r in enumerate(readers):
                chosen = np.flatnonzero(scores[i] >= threshold)
                picked += len(chosen)
                hits += sum(corpus.days[d][n][1] in r.topics for n in chosen)
        n = len(readers) * len(days)
        print(f"{threshold:9.2f} {picked / n:9.1f} {hits / max(1, picked):9.3f}")


if __name__ == "__main__":
    main()
