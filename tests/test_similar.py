"""The similarity ranker on a tiny invented corpus: picks and their reasons, dislikes, the
blend with keyword matches, and bytes round trips."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from digest.errors import StateError
from digest.models import Paper
from digest.select import DayMatcher, select
from digest.select.blend import blend, select_similar, similarities
from digest.select.similar import (
    Day,
    Profile,
    TfidfRanker,
    build_profile,
    load,
    profile_of,
    text_of,
    unit_rows,
)


@dataclass(frozen=True)
class Liked:
    kind: str
    key: str
    title: str
    abstract: str


def liked(kind: str, paper: Paper) -> Liked:
    return Liked(kind, paper.key, paper.title, paper.abstract)


def paper(key: str, title: str, abstract: str = "") -> Paper:
    return Paper(key=key, arxiv_id=key, title=title, abstract=abstract)


GNN = [
    paper(
        "2601.00001",
        "Message passing graph neural networks for molecular property prediction",
        "We train a graph neural network with message passing over atoms and bonds to "
        "predict molecular properties; node embeddings aggregate neighbour features.",
    ),
    paper(
        "2601.00002",
        "Scaling graph neural network training with neighbour sampling",
        "Graph neural networks on billion-edge graphs: neighbour sampling and message "
        "passing in mini-batches keep node embeddings accurate at a fraction of the memory.",
    ),
    paper(
        "2601.00003",
        "Over-smoothing in deep <i>graph</i> neural networks",
        "Stacking many message passing layers makes node embeddings of a graph neural "
        "network indistinguishable; we add residual edges between layers of the graph.",
    ),
    paper(
        "2601.00004",
        "Graph attention networks for traffic forecasting on road graphs",
        "A graph neural network with attention over neighbouring road segments forecasts "
        "traffic; message passing along edges of the road graph captures congestion.",
    ),
    paper(
        "2601.00005",
        "Équivariant graph neural networks for molecules in 3D",
        "Message passing that respects rotations: an equivariant graph neural network "
        "predicts molecular energies and forces from atom coordinates and bonds.",
    ),
    paper(
        "2601.00006",
        "Heterophily-aware graph neural networks",
        "When neighbours differ, message passing hurts; our graph neural network learns "
        "which edges of the graph to trust when aggregating node embeddings.",
    ),
]
DIFFUSION = [
    paper(
        "2601.00101",
        "Fewer sampling steps for image diffusion models",
        "A denoising diffusion model generates images in four sampling steps by distilling "
        "the noise schedule of a teacher diffusion model.",
    ),
    paper(
        "2601.00102",
        "Text-to-image diffusion guided by layout",
        "Diffusion models conditioned on text prompts and a layout denoise images whose "
        "objects follow the boxes; classifier-free guidance keeps the images faithful.",
    ),
    paper(
        "2601.00103",
        "Video diffusion models with temporal attention",
        "We extend image diffusion models to video: denoising frames jointly with temporal "
        "attention keeps motion smooth across the generated video.",
    ),
    paper(
        "2601.00104",
        "Latent diffusion for high resolution image synthesis",
        "Denoising in the latent space of an autoencoder makes diffusion models generate "
        "high resolution images with less compute per sampling step.",
    ),
    paper(
        "2601.00105",
        "Score matching and the noise schedule of diffusion models",
        "We analyse the noise schedule of score-based diffusion models and show which "
        "denoising steps matter for image quality.",
    ),
]
LLM = [
    paper(
        "2601.00201",
        "Retrieval-augmented generation with a document store",
        "A large language model retrieves passages from a document store and grounds its "
        "generation in them, reducing hallucination on open-domain questions.",
    ),
    paper(
        "2601.00202",
        "Chain-of-thought prompting for arithmetic reasoning",
        "Prompting a large language model to write intermediate reasoning steps improves "
        "its accuracy on arithmetic word problems.",
    ),
    paper(
        "2601.00203",
        "Instruction tuning large language models with synthetic data",
        "Instruction tuning on synthetic instructions written by a larger language model "
        "improves how a small language model follows prompts.",
    ),
    paper(
        "2601.00204",
        "Long-context language models forget the middle",
        "Large language models given long prompts answer questions about the start and the "
        "end of the context better than about its middle.",
    ),
    paper("2601.00205", "Tokenizer-free language models", ""),  # no abstract
]
STORED = GNN + DIFFUSION + LLM
RANKER = TfidfRanker.fit([text_of(p.title, p.abstract) for p in STORED])
#: The day: the GNN papers not liked below, and every other topic's.
DAY = [GNN[2], DIFFUSION[0], LLM[0], GNN[3], DIFFUSION[1], GNN[4], LLM[1], GNN[5], LLM[4]]
DAY_GNN = {GNN[2].key, GNN[3].key, GNN[4].key, GNN[5].key}


def gnn_reader() -> Profile:
    return build_profile(RANKER, [liked("like", GNN[0]), liked("like", GNN[1])])


#: A corpus of 16 papers gives lower similarities than thousands do (bench/relevance.py).
THRESHOLD = 0.15


def test_a_reader_of_two_gnn_papers_gets_the_days_gnn_papers_with_a_reason() -> None:
    day = RANKER.day(DAY)
    picks = select_similar(gnn_reader(), day, threshold=THRESHOLD, cap=10)
    assert {m.paper.key for m in picks} == DAY_GNN
    others = [n for n, p in enumerate(DAY) if p.key not in DAY_GNN]
    assert similarities([gnn_reader()], day)[0][others].max() < THRESHOLD * 0.6
    sims = [m.similarity for m in picks]
    assert all(s is not None and THRESHOLD <= s <= 1 for s in sims)
    assert sims == sorted(sims, reverse=True)  # type: ignore[type-var]
    assert all(m.like in (GNN[0].title, GNN[1].title) for m in picks)
    reason = {m.paper.key: m.like for m in picks}
    # The equivariant molecules paper is nearest to the liked molecules paper.
    assert reason[GNN[4].key] == GNN[0].title
    assert f"{round(100 * (picks[0].similarity or 0))}%" != "0%"


def test_the_cap_keeps_the_best_picks() -> None:
    day = RANKER.day(DAY)
    every = select_similar(gnn_reader(), day, threshold=THRESHOLD, cap=10)
    two = select_similar(gnn_reader(), day, threshold=THRESHOLD, cap=2)
    assert two == every[:2]
    assert select_similar(gnn_reader(), day, cap=0) == []


def test_a_dislike_pushes_the_papers_like_it_down() -> None:
    day = RANKER.day(DAY)
    plain = similarities([gnn_reader()], day)[0]
    disliking = build_profile(
        RANKER, [liked("like", GNN[0]), liked("like", GNN[1]), liked("dislike", GNN[3])]
    )
    pushed = similarities([disliking], day)[0]
    traffic = day.number[GNN[3].key]
    assert pushed[traffic] < plain[traffic]
    drop = plain - pushed
    assert drop[traffic] == drop.max()  # the disliked paper's neighbour lost the most
    picks = select_similar(disliking, day, threshold=THRESHOLD)
    keys = [m.paper.key for m in picks]
    assert GNN[3].key not in keys[:1]
    assert disliking.keys == {GNN[0].key, GNN[1].key, GNN[3].key}


def test_liked_disliked_and_excluded_papers_are_never_picked() -> None:
    day = RANKER.day([*DAY, GNN[0], GNN[1]])  # the liked papers are listed again
    profile = build_profile(RANKER, [liked("like", GNN[0]), liked("like", GNN[1])])
    picks = select_similar(profile, day, exclude_keys={GNN[2].key}, threshold=0.0)
    keys = {m.paper.key for m in picks}
    assert not keys & {GNN[0].key, GNN[1].key, GNN[2].key}
    assert DAY_GNN - {GNN[2].key} <= keys


def test_keyword_matches_come_first_then_picks_fill_up_to_the_cap() -> None:
    day = RANKER.day(DAY)
    matcher = DayMatcher(DAY)
    keyword = matcher.select(["diffusion"])
    assert {m.paper.key for m in keyword} == {DIFFUSION[0].key, DIFFUSION[1].key}
    out = blend(keyword, gnn_reader(), day, has_keywords=True, cap=5, threshold=THRESHOLD)
    assert [m.paper.key for m in out[:2]] == [m.paper.key for m in keyword] or {
        m.paper.key for m in out[:2]
    } == {m.paper.key for m in keyword}
    assert out[0].terms and out[1].terms and out[0].like is None
    assert len(out) == 5
    assert {m.paper.key for m in out[2:]} <= DAY_GNN
    assert all(m.like and m.similarity for m in out[2:])


def test_similarity_orders_the_keyword_matches() -> None:
    day = RANKER.day(DAY)
    keyword = DayMatcher(DAY).select(["network OR networks OR model OR models"])
    out = blend(keyword, gnn_reader(), day, has_keywords=True, cap=3)
    assert len(out) == len(keyword)  # more matches than the cap: no picks, all kept
    assert {m.paper.key for m in out} == {m.paper.key for m in keyword}
    assert out[0].paper.key in DAY_GNN and out[-1].paper.key not in DAY_GNN


def test_likes_and_no_keywords_get_the_picks_only() -> None:
    day = RANKER.day(DAY)
    everything = DayMatcher(DAY).select([])
    out = blend(everything, gnn_reader(), day, has_keywords=False, cap=3, threshold=THRESHOLD)
    assert len(out) == 3 and {m.paper.key for m in out} <= DAY_GNN
    assert out == select_similar(gnn_reader(), day, cap=3, threshold=THRESHOLD)


@pytest.mark.parametrize(
    ("keywords", "exclude"),
    [((), ()), (("diffusion",), ()), (("graph", "language"), ("attention",))],
)
def test_without_likes_the_selection_is_todays(
    keywords: tuple[str, ...], exclude: tuple[str, ...]
) -> None:
    matcher = DayMatcher(DAY)
    today = select(matcher.select(keywords, exclude), {DAY[0].key}, 3)
    keyword = matcher.select(keywords, exclude)
    out = blend(keyword, None, RANKER.day(DAY), has_keywords=bool(keywords), cap=3)
    assert select(out, {DAY[0].key}, 3) == today


def test_similarities_of_many_profiles_at_once_match_one_by_one() -> None:
    day = RANKER.day(DAY)
    others = build_profile(RANKER, [liked("like", DIFFUSION[2]), liked("dislike", LLM[2])])
    both = similarities([gnn_reader(), others], day)
    assert np.allclose(both[1], similarities([others], day)[0], atol=1e-6)
    row = both[0]
    assert select_similar(gnn_reader(), day, scores=row) == select_similar(gnn_reader(), day)


def test_the_model_round_trips_through_bytes() -> None:
    again = load(RANKER.to_bytes())
    assert again.terms == RANKER.terms and again.version == RANKER.version
    texts = [text_of(p.title, p.abstract) for p in DAY]
    assert np.allclose(again.vectors(texts), RANKER.vectors(texts), atol=2e-3)
    with pytest.raises(StateError, match="unreadable"):
        load(b"not a model")


def test_a_profile_round_trips_through_bytes() -> None:
    profile = build_profile(
        RANKER, [liked("like", GNN[4]), liked("like", GNN[0]), liked("dislike", LLM[1])]
    )
    again = Profile.from_bytes(profile.to_bytes())
    assert again.titles == (GNN[4].title, GNN[0].title)  # non-ASCII kept
    assert again.keys == profile.keys and again.likes_hash == profile.likes_hash
    assert np.array_equal(again.centre, profile.centre)
    assert np.array_equal(again.liked, profile.liked)
    with pytest.raises(StateError, match="unreadable"):
        Profile.from_bytes(b"\x05\x00\x00\x00{bad}")


def test_tiny_and_wordless_corpora() -> None:
    one = TfidfRanker.fit([text_of(GNN[0].title, GNN[0].abstract)])
    assert one.vectors(["graph neural network"]).shape == (1, one.dimensions)
    assert not one.vectors(["zzz qqq"]).any()  # no known word: zeros, never NaN
    with pytest.raises(StateError, match="cannot fit"):
        TfidfRanker.fit(["", "the of and"])


def test_html_in_titles_is_not_a_word() -> None:
    assert "<i>" not in text_of("Deep <i>graph</i> nets", "") and "graph" in text_of(
        "Deep <i>graph</i> nets", ""
    )
    assert not any(t in RANKER.terms for t in ("i graph", "sub"))


def test_likes_without_text_make_a_profile_that_picks_nothing() -> None:
    empty = build_profile(RANKER, [])
    assert not empty.has_likes and empty.centre.shape == (RANKER.dimensions,)
    day = RANKER.day(DAY)
    assert select_similar(empty, day, threshold=0.0) == []
    keyword = DayMatcher(DAY).select(["graph"])
    out = blend(keyword, empty, day, has_keywords=True, cap=10, threshold=0.0)
    assert [m.paper.key for m in out] == [m.paper.key for m in keyword]


def test_the_cap_is_filled_past_many_skipped_papers() -> None:
    # The same GNN papers listed again under other keys (a duplicate of a duplicate...).
    copies = [
        Paper(key=f"2602.{n:05d}", title=p.title, abstract=p.abstract)
        for n, p in enumerate(GNN[2:] * 6)
    ]
    day = RANKER.day([*DAY, *copies])
    every = select_similar(gnn_reader(), day, threshold=THRESHOLD, cap=100)
    assert len(every) == len(DAY_GNN) + len(copies)
    skipped = {m.paper.key for m in every[:20]}
    rest = select_similar(gnn_reader(), day, exclude_keys=skipped, threshold=THRESHOLD, cap=3)
    assert rest == every[20:23]


def test_a_title_on_two_lines_is_kept_on_one() -> None:
    wrapped = Paper(key="2601.00009", title="Graph neural\n  networks, wrapped", abstract="Graphs.")
    profile = build_profile(RANKER, [liked("like", wrapped)])
    again = Profile.from_bytes(profile.to_bytes())
    assert again.titles == ("Graph neural networks, wrapped",)


def reference_picks(
    profile: Profile, day: Day, row: NDArray[np.float32], skip: set[str], threshold: float, cap: int
) -> list[tuple[str, float, str]]:
    """The rule, the slow way: every paper in order of similarity (ties: the earlier
    first), those at or above the threshold, not skipped, nor liked, the first ``cap``;
    each with the nearest liked paper's title and its similarity as a pick shows it."""
    order = sorted(range(len(row)), key=lambda n: (-row[n], n))
    kept = [
        n
        for n in order
        if row[n] >= np.float32(threshold)
        and day.papers[n].key not in skip
        and day.papers[n].key not in profile.keys
    ][:cap]
    nearest = [int(np.argmax(profile.liked @ day.vectors[n])) for n in kept]
    sims = [float(np.round(row[n], 4)) for n in kept]
    return [
        (day.papers[n].key, s, profile.titles[i])
        for n, s, i in zip(kept, sims, nearest, strict=True)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_picks_are_the_full_orders_first_whatever_is_skipped(seed: int) -> None:
    """The quick path (a partition for the best few, the full order only when skipped
    papers leave room) picks what the full order does, ties and a profile read back from
    bytes included."""
    rng = np.random.default_rng(seed)
    size, dims = 400, 16
    raw = rng.standard_normal((size, dims)).astype(np.float32)
    raw[size // 2 :: 7] = raw[size // 2 - 7 :: 7][: len(raw[size // 2 :: 7])]  # equal scores
    day = Day([paper(f"2603.{n:05d}", f"Paper {n}") for n in range(size)], unit_rows(raw))
    likes = rng.choice(size, 6, replace=False)
    made = profile_of(
        1,
        "h",
        day.vectors[likes[:4]],
        day.vectors[likes[4:]],
        tuple(f"Liked {n}" for n in likes[:4]),
        frozenset(day.papers[n].key for n in likes),
    )
    profile = Profile.from_bytes(made.to_bytes()) if seed % 2 else made
    row = similarities([profile], day)[0]
    best = [day.papers[n].key for n in np.argsort(-row, kind="stable")]
    for skipped, threshold, cap in [
        (0, 0.0, 10),
        (5, 0.2, 10),
        (40, 0.0, 10),  # more skipped than the few looked at first
        (0, 0.3, 3),
        (200, -1.0, 25),
    ]:
        skip = set(best[:skipped])
        got = select_similar(profile, day, skip, threshold, cap, scores=row)
        want = reference_picks(profile, day, row, skip, threshold, cap)
        assert [(m.paper.key, m.score, m.like) for m in got] == want
        assert [m.similarity for m in got] == [min(1.0, max(0.0, s)) for _, s, _ in want]
