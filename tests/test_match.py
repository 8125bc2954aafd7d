"""Matching papers against queries: the word rules, selection, ranking and highlights."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import QueryError
from digest.models import Match, Paper, Span
from digest.select import (
    DEFAULT_FIELDS,
    WEIGHTS,
    And,
    DayMatcher,
    Field,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    index_paper,
    match_paper,
    parse,
    plural_variants,
    to_text,
)
from digest.words import word_spans, words


def paper(
    title: str = "", abstract: str = "", authors: tuple[str, ...] = (), upvotes: int = 0
) -> Paper:
    return Paper(
        key=title or abstract or ",".join(authors),
        title=title,
        abstract=abstract,
        authors=authors,
        upvotes=upvotes,
    )


def hits(query: str, title: str = "", abstract: str = "", authors: tuple[str, ...] = ()) -> bool:
    return match_paper(query, paper(title, abstract, authors)) is not None


# --- which papers a query matches ---------------------------------------------


@pytest.mark.parametrize(
    ("query", "title", "abstract", "expected"),
    [
        # whole words, any case, any accents
        ("llm", "LLM Agents", "", True),
        ("LLM", "llm agents", "", True),
        ("agent", "Agentic systems", "", False),
        ("net", "ResNet", "", False),
        ("naive", "Naïve Bayes", "", True),
        ("Naïve", "naive bayes", "", True),
        ("strasse", "Straße", "", True),
        ("resume", "Résumé parsing", "", True),
        ("model", "", "a diffusion model", True),
        ("model", "", "", False),
        # plurals: a trailing s or es, both ways
        ("agent", "Agents at work", "", True),
        ("agents", "An agent at work", "", True),
        ("LLM", "", "LLMs are large", True),
        ("LLMs", "", "an LLM is large", True),
        ("process", "Gaussian Processes", "", True),
        ("processes", "A Gaussian process", "", True),
        ("box", "Boxes", "", True),
        ("agent", "Agentss", "", False),
        ("agen", "Agents", "", False),
        ("models", "Modeling", "", False),
        # prefixes
        ("quantiz*", "Quantization for all", "", True),
        ("quantiz*", "Quantize it", "", True),
        ("quantiz*", "", "We quantized weights", True),
        ("quantiz*", "Dequantization", "", False),
        ("Agent*", "agentic workflows", "", True),
        ("agents*", "agent", "", False),
        # words joined by other characters are phrases
        ("GPT-4", "GPT-4 technical report", "", True),
        ("GPT-4", "GPT 4 report", "", True),
        ("gpt-4", "", "compared with gpt4", False),
        ("GPT-4", "GPT-4o", "", False),
        ("GPT-4", "", "GPT and 4", False),
        ("foo:bar", "", "foo bar", True),
        ("https://example.org", "", "see https://example.org/x", True),
        # quoted phrases: consecutive words, hyphens and spaces alike
        ('"mixture of experts"', "Sparse Mixture-of-Experts", "", True),
        ('"mixture of experts"', "Mixture of Experts", "", True),
        ('"Mixture-of-Experts"', "mixture of  experts", "", True),
        ('"mixture of experts"', "Mixture of many Experts", "", False),
        ('"mixture of experts"', "Experts of mixture", "", False),
        ('"mixture of experts"', "Mixture of", "Experts", False),
        ('"large language model"', "", "Large Language Models rule", True),
        ('"large language models"', "", "a large language model", True),
        ('"large languages model"', "", "large language model", False),
        ('"diffusion model"', "Diffusion-Models", "", True),
        ('"large lang*"', "", "large language models", True),
        ('"large lang*"', "", "large lamps", False),
        ('"naive bayes"', "Naïve-Bayes", "", True),
        # AND, OR, NOT, -, parentheses
        ("diffusion agent", "Diffusion", "agents", True),
        ("diffusion agent", "Diffusion", "", False),
        ("diffusion AND agent", "agent", "diffusion", True),
        ("diffusion OR agent", "", "agent", True),
        ("diffusion OR agent", "", "nothing", False),
        ("diffusion -survey", "Diffusion", "", True),
        ("diffusion -survey", "Diffusion: a survey", "", False),
        ("diffusion NOT survey", "Diffusion surveys", "", False),
        ("-survey", "anything", "", True),
        ("-survey", "A Survey", "", False),
        ('-"a survey"', "Survey", "", True),
        ('-"a survey"', "A Survey", "", False),
        ("-(diffusion agent)", "diffusion", "", True),
        ("-(diffusion agent)", "diffusion", "agent", False),
        ("NOT a b", "b", "", True),
        ("NOT a b", "a b", "", False),
        ("a OR b c", "a", "", True),
        ("a OR b c", "c", "", False),
        ("a OR b c", "b c", "", True),
        ("(a OR b) c", "a", "", False),
        ("(a OR b) c", "a c", "", True),
        ("((a OR (b c)) d)", "b c d", "", True),
        ("((a OR (b c)) d)", "b d", "", False),
        ("a and b", "a b", "", False),
        ("a and b", "a and b", "", True),
        ("a or b", "a", "", False),
        # fields; without one, title and abstract
        ("title:diffusion", "Diffusion", "", True),
        ("title:diffusion", "", "diffusion", False),
        ("Title:diffusion", "Diffusion", "", True),
        ("abstract:diffusion", "", "diffusion", True),
        ("abstract:diffusion", "diffusion", "", False),
        ('title:"mixture of experts"', "Mixture-of-Experts", "", True),
        ("title:(a OR b) c", "b", "c", True),
        ("title:(a OR b) c", "c", "b", False),
        ("title:(a b)", "a", "b", False),
        ("-title:survey", "Diffusion", "a survey", True),
        ("title:-survey", "survey", "", False),
        ("title:(a abstract:b)", "a", "b", True),
        ("title:(a abstract:b)", "a b", "", False),
    ],
)
def test_matches(query: str, title: str, abstract: str, expected: bool) -> None:
    assert hits(query, title, abstract) is expected


AUTHORS = ("Ada Smith", "Bob Okafor", "Chiara Ōno")


@pytest.mark.parametrize(
    ("query", "authors", "expected"),
    [
        ("author:okafor", AUTHORS, True),
        ("Author:OKAFOR", AUTHORS, True),
        ("author:ono", AUTHORS, True),
        ("author:smiths", AUTHORS, True),
        ("author:oka*", AUTHORS, True),
        ('author:"Ada Okafor"', ("Ada Okafor",), True),
        ('author:"Ada Okafor"', ("Ada Smith", "Bob Okafor"), False),
        ('author:"Smith Bob"', ("Ada Smith", "Bob Okafor"), False),
        ("author:Okafor-Smith", ("Ada Okafor-Smith",), True),
        ("author:Okafor-Smith", ("Ada Okafor", "Smith"), False),
        ("author:(ada OR bob)", ("Bob Okafor",), True),
        ("author:okafor", ("Ada Smith",), False),
        ("okafor", AUTHORS, False),  # a term without a field ignores the authors
        ("author:diffusion", (), False),
    ],
)
def test_author(query: str, authors: tuple[str, ...], expected: bool) -> None:
    assert hits(query, "Diffusion", "diffusion", authors) is expected


def test_plural_variants() -> None:
    assert plural_variants("agent") == ["agent", "agents", "agentes"]
    assert set(plural_variants("processes")) >= {"processes", "processe", "process"}
    assert "" not in plural_variants("s") + plural_variants("es")


def test_index_paper_keeps_words_and_positions() -> None:
    indexed = index_paper(paper("Naïve GPT-4", "x", ("Ada Okafor",)))
    title, abstract, author = indexed.slots
    assert title.words == ("naive", "gpt", "4")
    assert (title.starts, title.ends) == ((0, 6, 10), (5, 9, 11))
    assert (author.field, author.index, author.words) == ("author", 0, ("ada", "okafor"))
    assert indexed.postings["gpt"] == ((0, 1),)
    assert abstract.words == ("x",)


def test_invalid_queries_raise() -> None:
    matcher = DayMatcher([paper("a")])
    with pytest.raises(QueryError):
        matcher.select(["a AND"], [])
    with pytest.raises(QueryError):
        matcher.select(["a"], ["(b"])
    with pytest.raises(QueryError):
        matcher.matches_query("")


# --- selection: any keyword query, no exclude query ---------------------------

DAY = [
    paper("Diffusion Models for Video", "We train a diffusion model.", ("Ada Okafor",), 10),
    paper("LLM Agents: a Survey", "Large language models as agents.", ("Bob Smith",), 50),
    paper("Medical Diffusion", "Diffusion for medical images.", ("Chiara Ōno",), 5),
    paper("Quantization of LLMs", "We quantize large language models.", (), 20),
    paper("Graph Networks", "Nothing to see.", (), 1),
]


def keys(found: list[Match]) -> list[str]:
    return [m.paper.title for m in found]


@pytest.mark.parametrize(
    ("keywords", "exclude", "expected"),
    [
        (["diffusion"], [], {"Diffusion Models for Video", "Medical Diffusion"}),
        (["diffusion"], ["medical"], {"Diffusion Models for Video"}),
        (
            ["diffusion", "LLM"],
            ["survey"],
            {"Diffusion Models for Video", "Medical Diffusion", "Quantization of LLMs"},
        ),
        (["diffusion", "diffusion"], [], {"Diffusion Models for Video", "Medical Diffusion"}),
        ([], [], {p.title for p in DAY}),
        ([], ["diffusion", "llm"], {"Graph Networks"}),
        (["nothing-matches-this"], [], set()),
        (["graph"], ["graph"], set()),
        (["-diffusion"], [], {"LLM Agents: a Survey", "Quantization of LLMs", "Graph Networks"}),
        (['"large language model" AND survey'], [], {"LLM Agents: a Survey"}),
        (["author:okafor OR author:ono"], [], {"Diffusion Models for Video", "Medical Diffusion"}),
    ],
)
def test_select(keywords: list[str], exclude: list[str], expected: set[str]) -> None:
    assert set(keys(DayMatcher(DAY).select(keywords, exclude))) == expected


def test_empty_keywords_rank_by_upvotes_without_terms() -> None:
    found = DayMatcher(DAY).select([], [])
    assert [m.paper.upvotes for m in found] == [50, 20, 10, 5, 1]
    assert all(m.score == 0 and m.terms == () and m.spans == () for m in found)


def test_results_are_cached_per_query_text() -> None:
    matcher = DayMatcher(DAY)
    first = matcher.matches_query("diffusion")
    assert matcher.matches_query("diffusion") is first
    assert len(first) == 2 and 0 in first and 4 not in first
    assert [m.paper.title for m in first.matches] == [
        "Diffusion Models for Video",
        "Medical Diffusion",
    ]
    assert matcher.select(["diffusion"]) == list(first.matches)
    # a caller changing the returned list does not change the cache
    matcher.select(["diffusion"]).clear()
    assert len(matcher.select(["diffusion"])) == 2


# --- ranking ------------------------------------------------------------------


def test_title_outranks_abstract_then_upvotes_then_title() -> None:
    papers = [
        paper("Other", "about agents", upvotes=100),
        paper("Agents B", "", upvotes=5),
        paper("Agents A", "", upvotes=5),
        paper("Agents C", "", upvotes=7),
        paper("More", "agent things", upvotes=1),
    ]
    found = DayMatcher(papers).select(["agent"], [])
    assert keys(found) == ["Agents C", "Agents A", "Agents B", "Other", "More"]
    assert [m.score for m in found] == [3.0, 3.0, 3.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("query", "title", "abstract", "authors", "score"),
    [
        ("agent", "Agents", "", (), WEIGHTS["title"]),
        ("agent", "", "agents", (), WEIGHTS["abstract"]),
        ("agent", "Agents", "agents and an agent", (), WEIGHTS["title"] + WEIGHTS["abstract"]),
        ("author:okafor", "", "", ("Ada Okafor", "Bob Okafor"), WEIGHTS["author"]),
        ("agent OR diffusion", "", "agent diffusion", (), 2 * WEIGHTS["abstract"]),
        ("agent diffusion", "Diffusion", "agent", (), WEIGHTS["title"] + WEIGHTS["abstract"]),
        ("agent -survey", "agent", "", (), WEIGHTS["title"]),
        ("-survey", "agent", "", (), 0.0),
        ("agent*", "", "agent agents agentic", (), WEIGHTS["abstract"]),
    ],
)
def test_scores(
    query: str, title: str, abstract: str, authors: tuple[str, ...], score: float
) -> None:
    found = match_paper(query, paper(title, abstract, authors))
    assert found is not None
    assert found.score == score


def test_several_matched_terms_add_up() -> None:
    papers = [
        paper("One", "diffusion", upvotes=100),
        paper("Two", "diffusion and agents", upvotes=1),
    ]
    assert keys(DayMatcher(papers).select(["diffusion OR agent"], [])) == ["Two", "One"]
    assert keys(DayMatcher(papers).select(["diffusion", "agent"], [])) == ["Two", "One"]


def test_scores_across_queries_count_each_term_once() -> None:
    matcher = DayMatcher([paper("Diffusion agents", "")])
    (both,) = matcher.select(["diffusion", "agent"], [])
    assert both.score == 2 * WEIGHTS["title"]
    assert both.terms == ("diffusion", "agents")
    (same,) = matcher.select(["diffusion", "diffusion OR nothing"], [])
    assert same.score == WEIGHTS["title"]
    assert same.spans == (Span("title", 0, 9),)


# --- highlights and matched terms ---------------------------------------------


def test_spans_are_offsets_in_the_original_text() -> None:
    title = "Naïve Bayes is not naïve"
    found = match_paper("naive", paper(title))
    assert found is not None
    assert found.spans == (Span("title", 0, 5), Span("title", 19, 24))
    assert [title[s.start : s.end] for s in found.spans] == ["Naïve", "naïve"]
    assert found.terms == ("naïve",)


def test_phrase_span_covers_the_hyphenated_words() -> None:
    title = "Sparse Mixture-of-Experts Models"
    found = match_paper('"mixture of experts"', paper(title))
    assert found is not None
    (span,) = found.spans
    assert title[span.start : span.end] == "Mixture-of-Experts"
    assert found.terms == ("mixture-of-experts",)


def test_spans_with_decomposed_accents() -> None:
    abstract = "un mode\u0300le de diffusion"  # "modèle" with a combining grave accent
    found = match_paper('"modele de diffusion"', paper("", abstract))
    assert found is not None
    (span,) = found.spans
    assert (span.field, abstract[span.start : span.end]) == ("abstract", abstract[3:])


def test_author_spans_carry_the_author_index() -> None:
    found = match_paper('author:"Ada Okafor"', paper("T", "", ("Bob Smith", "Ada Okafor")))
    assert found is not None
    assert found.spans == (Span("author", 0, 10, index=1),)
    assert found.terms == ("ada okafor",)


def test_no_spans_for_negated_terms_or_excludes() -> None:
    papers = [paper("Diffusion agents", "no survey here but medical")]
    matcher = DayMatcher(papers)
    (found,) = matcher.select(["diffusion -robot NOT (x OR y)"], ["unrelated"])
    assert found.spans == (Span("title", 0, 9),)
    assert found.terms == ("diffusion",)
    (found,) = matcher.select(["diffusion"], ["robot", "-medical"])
    assert found.terms == ("diffusion",)
    (found,) = matcher.select(["-robot"], [])
    assert (found.terms, found.spans) == ((), ())


def test_both_sides_of_or_highlighted_when_present() -> None:
    found = match_paper("diffusion OR agent OR robot", paper("Diffusion agents"))
    assert found is not None
    assert found.spans == (Span("title", 0, 9), Span("title", 10, 16))


def test_overlapping_spans_are_merged_and_terms_kept() -> None:
    found = match_paper('diffusion "diffusion model"', paper("", "Diffusion models work"))
    assert found is not None
    assert found.spans == (Span("abstract", 0, 16),)
    assert found.terms == ("diffusion", "diffusion models")


def test_terms_in_order_of_first_appearance() -> None:
    p = paper("Agents for Diffusion", "Large Language Models and diffusion agents", ("Ada",))
    query = '"large language model" OR diffusion OR agent OR author:ada'
    found = match_paper(query, p)
    assert found is not None
    assert found.terms == ("agents", "diffusion", "large language models", "ada")
    assert [s.field for s in found.spans] == ["title"] * 2 + ["abstract"] * 3 + ["author"]


# --- properties ---------------------------------------------------------------
# Papers and queries are decoded from one drawn byte string each: drawing is what costs
# time in hypothesis, and bytes shrink towards the simplest example all the same.

# fmt: off
VOCAB = [
    "agent", "agents", "LLM", "LLMs", "naïve", "naive", "process", "processes", "mixture",
    "of", "experts", "GPT", "4", "Ada", "Okafor", "quantize", "quantization", "Straße",
    "strasse", "modèle", "GPT™", "½",
    "mode\u0300le",  # decomposed: e and a combining grave accent
]
# fmt: on
SEPARATORS = [" ", "-", ", ", ". ", "  ", "/", "\n"]
_WORDS = sorted({w for v in VOCAB for w in words(v)})


def _text(codes: bytes) -> str:
    """Words of :data:`VOCAB` joined by :data:`SEPARATORS`, one per byte."""
    pieces = [VOCAB[c % len(VOCAB)] + SEPARATORS[c // len(VOCAB) % len(SEPARATORS)] for c in codes]
    return "".join(pieces).strip(" ")


def _papers(data: bytes) -> list[Paper]:
    """Up to five papers; 255 ends a paper, 254 a field, 253 an author's name."""
    found = []
    for number, chunk in enumerate(data.split(b"\xff")[:5]):
        title, _, rest = chunk.partition(b"\xfe")
        abstract, _, names = rest.partition(b"\xfe")
        authors = tuple(_text(name) for name in names.split(b"\xfd") if name)
        found.append(paper(_text(title), _text(abstract), authors, upvotes=number % 3))
    return found if data else []


def _node(codes: bytes) -> Node:
    """A query tree decoded from ``codes``; only leaves once the codes run out."""
    it = iter(codes)

    def take(n: int) -> int:
        return next(it, 0) % n

    def build(depth: int) -> Node:
        kind = take(7) if depth < 3 else take(3)
        if kind == 0:
            return Term(_WORDS[take(len(_WORDS))])
        if kind == 1:
            return Prefix(_WORDS[take(len(_WORDS))][: 1 + take(4)])
        if kind == 2:
            size = 2 + take(2)
            return Phrase(tuple(_WORDS[take(len(_WORDS))] for _ in range(size)), take(2) == 1)
        if kind == 3:
            return Not(build(depth + 1))
        if kind == 4:
            return And((build(depth + 1), build(depth + 1)))
        if kind == 5:
            return Or((build(depth + 1), build(depth + 1)))
        return Field(("title", "abstract", "author")[take(3)], build(depth + 1))

    # to_text and back: the parser's own form, with nested ANDs and ORs flattened
    return parse(to_text(build(0)))


def _queries(data: bytes) -> list[str]:
    return [to_text(_node(chunk)) for chunk in data.split(b"\xff") if chunk]


papers_strategy = st.binary(max_size=80).map(_papers)
nodes = st.binary(min_size=1, max_size=24).map(_node)
queries = st.binary(max_size=40).map(_queries)


def _word_matches(leaf_word: str, word: str, prefix: bool) -> bool:
    if prefix:
        return word.startswith(leaf_word)
    return leaf_word == word or any(
        a == b + s for a, b in ((word, leaf_word), (leaf_word, word)) for s in ("s", "es")
    )


def reference(node: Node, p: Paper, fields: frozenset[str] = DEFAULT_FIELDS) -> bool:
    """The query rules applied the slow, obvious way: scan every word of every field."""
    if isinstance(node, Field):
        return reference(node.operand, p, frozenset({node.name}))
    if isinstance(node, Not):
        return not reference(node.operand, p, fields)
    if isinstance(node, And):
        return all(reference(op, p, fields) for op in node.operands)
    if isinstance(node, Or):
        return any(reference(op, p, fields) for op in node.operands)
    pattern: tuple[str, ...]
    if isinstance(node, Term):
        pattern, prefix = (node.word,), False
    elif isinstance(node, Prefix):
        pattern, prefix = (node.stem,), True
    else:
        pattern, prefix = node.words, node.prefix
    texts = [p.title] * ("title" in fields) + [p.abstract] * ("abstract" in fields)
    texts += list(p.authors) * ("author" in fields)
    for text in texts:
        ws = words(text)
        for i in range(len(ws) - len(pattern) + 1):
            window = ws[i : i + len(pattern)]
            if window[:-1] == list(pattern[:-1]) and _word_matches(pattern[-1], window[-1], prefix):
                return True
    return False


def check_spans(match: Match) -> None:
    """Spans lie on words of the original text, sorted, apart; terms are distinct."""
    p = match.paper
    last: tuple[int, int, int] | None = None
    for span in match.spans:
        text = {"title": p.title, "abstract": p.abstract}.get(span.field)
        text = p.authors[span.index] if span.field == "author" else text
        assert text is not None
        assert 0 <= span.start < span.end <= len(text)
        assert words(text[span.start : span.end])
        key = ({"title": 0, "abstract": 1, "author": 2}[span.field], span.index)
        if last is not None and last[:2] == key:
            assert last[2] <= span.start
        last = (*key, span.end)
    assert len(set(match.terms)) == len(match.terms)
    assert bool(match.terms) == bool(match.spans)


@given(st.text())
def test_word_spans_agree_with_words(text: str) -> None:
    found = list(word_spans(text))
    assert [w for w, _, _ in found] == words(text)
    for _, start, end in found:
        assert words(text[start:end])


@settings(max_examples=150)
@given(papers_strategy, nodes)
def test_index_agrees_with_reference(papers: list[Paper], node: Node) -> None:
    matcher = DayMatcher(papers)
    result = matcher.matches_query(to_text(node))
    expected = {n for n, p in enumerate(papers) if reference(node, p)}
    assert set(result.hits) == expected
    for match in result.matches:
        assert match.score >= 0
        check_spans(match)


@settings(max_examples=150)
@given(papers_strategy, queries, queries)
def test_select_is_any_keyword_and_no_exclude(
    papers: list[Paper], keywords: list[str], exclude: list[str]
) -> None:
    found = DayMatcher(papers).select(keywords, exclude)

    def hit(n: int, queries: list[str]) -> bool:
        return any(reference(parse(q), papers[n]) for q in queries)

    expected = [
        n for n in range(len(papers)) if (not keywords or hit(n, keywords)) and not hit(n, exclude)
    ]
    assert sorted(id(m.paper) for m in found) == sorted(id(papers[n]) for n in expected)
    ranks = [(-m.score, -m.paper.upvotes) for m in found]
    assert ranks == sorted(ranks)
    for match in found:
        check_spans(match)


@given(st.text(max_size=40), st.text(max_size=80))
def test_any_query_against_any_paper_never_crashes(query: str, text: str) -> None:
    third = len(text) // 3
    odd = paper(text[:third], text[third:], tuple(text[third:].split(",")))
    matcher = DayMatcher([odd, *_papers(text.encode()[:40])])
    try:
        found = matcher.select([query], [query[::-1]])
    except QueryError:
        return
    for match in found:
        check_spans(match)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["diffusion", "agent*", '"language model"', "title:survey",
                                 "robots OR protein", "NOT diffusion"]), max_size=3),
       st.lists(st.sampled_from(["medical", "survey", "diffusion"]), max_size=2))  # fmt: skip
def test_keys_are_the_papers_select_gives(keywords: list[str], exclude: list[str]) -> None:
    matcher = DayMatcher(DAY)
    assert matcher.keys(keywords, exclude) == {
        m.paper.key for m in matcher.select(keywords, exclude)
    }
    shown, rest = matcher.choose(keywords, exclude, cap=2)
    assert [m.paper.key for m in shown + rest] == [
        m.paper.key for m in matcher.select(keywords, exclude)
    ]
    assert shown == matcher.select(keywords, exclude)[:2]
