"""The query language: parse tables, error positions, round trips and parser properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.errors import DigestError, QueryError
from digest.select import (
    MAX_DEPTH,
    And,
    Field,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    leaves,
    parse,
    to_text,
    validate,
)

a, b, c, d = Term("a"), Term("b"), Term("c"), Term("d")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # terms: folded words
        ("agent", Term("agent")),
        ("LLMs", Term("llms")),
        ("Naïve", Term("naive")),
        ("Straße", Term("strasse")),
        ("  padded  ", Term("padded")),
        ("C++", Term("c")),
        ("*foo", Term("foo")),
        # characters other than letters and digits make a phrase of the words
        ("GPT-4", Phrase(("gpt", "4"))),
        ("mixture-of-experts", Phrase(("mixture", "of", "experts"))),
        ("e.g.", Phrase(("e", "g"))),
        ('"foo:bar"', Phrase(("foo", "bar"))),  # unquoted, an unknown field: see below
        ("https://arxiv.org/abs/2503", Phrase(("https", "arxiv", "org", "abs", "2503"))),
        ('"NOT:x"', Phrase(("not", "x"))),
        # prefixes
        ("quantiz*", Prefix("quantiz")),
        ("Agent*", Prefix("agent")),
        ("foo**", Prefix("foo")),
        ("foo-*", Term("foo")),
        ("GPT-4*", Phrase(("gpt", "4"), prefix=True)),
        # phrases
        ('"mixture of experts"', Phrase(("mixture", "of", "experts"))),
        ('"Mixture-of-Experts"', Phrase(("mixture", "of", "experts"))),
        ('"single"', Term("single")),
        ('"AND"', Term("and")),
        ('"large lang*"', Phrase(("large", "lang"), prefix=True)),
        ('"quantiz*"', Prefix("quantiz")),
        ('"foo *"', Term("foo")),
        ('"a b"c', And((Phrase(("a", "b")), c))),
        # operators and precedence: NOT, then AND, then OR
        ("a b", And((a, b))),
        ("a\u00a0b", And((a, b))),  # any white space separates
        ("a\u2003OR\tb", Or((a, b))),
        ("a AND b", And((a, b))),
        ("a OR b", Or((a, b))),
        ("a OR b c", Or((a, And((b, c))))),
        ("a b OR c", Or((And((a, b)), c))),
        ("a AND b OR c AND d", Or((And((a, b)), And((c, d))))),
        ("NOT a b", And((Not(a), b))),
        ("a NOT b", And((a, Not(b)))),
        ("NOT a OR b", Or((Not(a), b))),
        ("NOT NOT a", Not(Not(a))),
        ("-a", Not(a)),
        ("a -b", And((a, Not(b)))),
        ("--a", Not(Not(a))),
        ('-"a b"', Not(Phrase(("a", "b")))),
        ("-(a b)", Not(And((a, b)))),
        ("NOT(a)", Not(a)),
        ("-AND", Not(Term("and"))),
        ("a-b", Phrase(("a", "b"))),
        # operators are upper case only
        ("a and b", And((a, Term("and"), b))),
        ("a or b", And((a, Term("or"), b))),
        ("not a", And((Term("not"), a))),
        ("And", Term("and")),
        # parentheses
        ("(a)", a),
        ("((a))", a),
        ("(a OR b) c", And((Or((a, b)), c))),
        ("((a OR (b c)) d)", And((Or((a, And((b, c)))), d))),
        ("a(b)", And((a, b))),
        ("(a)(b)", And((a, b))),
        # fields
        ("title:a", Field("title", a)),
        ("Title:a", Field("title", a)),
        ("AUTHOR:a", Field("author", a)),
        ("abstract:a", Field("abstract", a)),
        ("title: a", Field("title", a)),
        ('author:"Ada Okafor"', Field("author", Phrase(("ada", "okafor")))),
        ("title:(a OR b)", Field("title", Or((a, b)))),
        ("title:(a b) c", And((Field("title", And((a, b))), c))),
        ("title:GPT-4", Field("title", Phrase(("gpt", "4")))),
        ("title:agent*", Field("title", Prefix("agent"))),
        ("title:-a", Field("title", Not(a))),
        ("-title:a", Not(Field("title", a))),
        ("title:NOT", Field("title", Term("not"))),
        ("title:author:a", Field("title", Field("author", a))),
        ("title:a OR b", Or((Field("title", a), b))),
        ("title::a", Field("title", a)),
        ("title :a", And((Term("title"), a))),
    ],
)
def test_parse(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("a OR b c", "a OR (b AND c)"),
        ("a b OR c", "(a b) OR c"),
        ("NOT a b", "(NOT a) AND b"),
        ("-a b", "NOT a AND b"),
        ("a b c", "a (b c)"),
        ("a OR b OR c", "a OR (b OR c)"),
        ("GPT-4", '"gpt 4"'),
        ('"foo:bar"', '"foo bar"'),
        ("a AND b", "a   b"),
        ('"mixture of experts"', "mixture-of-experts"),
    ],
)
def test_equivalent(left: str, right: str) -> None:
    assert parse(left) == parse(right)


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ('"unclosed', 0, "quote"),
        ('a "b c', 2, "quote"),
        ('a "b" "c', 6, "quote"),
        ("(a", 0, "parenthesis"),
        ("a (b (c)", 2, "parenthesis"),
        ("a)", 1, "')'"),
        ("(a))", 3, "')'"),
        (")", 0, "')'"),
        ("()", 0, "empty parentheses"),
        ("a ()", 2, "empty parentheses"),
        ("a AND", 2, "AND"),
        ("a OR", 2, "OR"),
        ("OR b", 0, "OR"),
        ("AND b", 0, "AND"),
        ("a AND OR b", 2, "AND"),
        ("a OR OR b", 2, "OR"),
        ("(a OR)", 3, "OR"),
        ("(OR a)", 1, "OR"),
        ("NOT", 0, "NOT"),
        ("a NOT", 2, "NOT"),
        ("NOT OR a", 0, "NOT"),
        ("title:", 0, "title:"),
        ("a Author:", 2, "author:"),
        ("title: ", 0, "title:"),
        ("title:)", 0, "title:"),
        ("title:(a", 6, "parenthesis"),
        ("*", 0, "letters or digits"),
        ("**", 0, "letters or digits"),
        ("-", 0, "letters or digits"),
        ("a - b", 2, "letters or digits"),
        ("(a -)", 3, "letters or digits"),
        ("a ...", 2, "letters or digits"),
        ('""', 0, "letters or digits"),
        ('a "--"', 2, "phrase"),
        ("-*", 1, "letters or digits"),
        ("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1), MAX_DEPTH, "nested"),
        ("-" * (MAX_DEPTH + 5) + "a", MAX_DEPTH, "nested"),
    ],
)
def test_invalid(query: str, position: int, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(query)
    error = caught.value
    assert (error.query, error.position) == (query, position)
    assert reason in error.reason
    assert isinstance(error, DigestError)
    assert f"position {position}" in str(error)


@pytest.mark.parametrize(
    ("query", "position", "reason"),
    [
        ("tilte:diffusion", 0, "unknown field tilte:, did you mean title:?"),
        ("Titel:diffusion", 0, "unknown field Titel:, did you mean title:?"),
        ("abstarct:(a OR b)", 0, "unknown field abstarct:, did you mean abstract:?"),
        ('autor:"Ada Okafor"', 0, "unknown field autor:, did you mean author:?"),
        ("authors: Okafor", 0, "did you mean author:?"),  # a space may follow a field
        ("tilte: diffusion", 0, "did you mean title:?"),
        ("a OR tilte:", 5, "did you mean title:?"),
        ("foo:bar", 0, "unknown field foo: (the fields are title:, abstract:, author:)"),
        ("llm foo:bar", 4, "unknown field foo:"),
        ("-foo:bar", 1, "unknown field foo:"),
        ("NOT foo:bar", 4, "unknown field foo:"),
        ("title:foo:bar", 6, "unknown field foo:"),
        ("(a OR foo:(b c))", 6, "unknown field foo:"),
        ("foo:*", 0, "unknown field foo:"),
        ("NOT:x", 0, "unknown field NOT:"),
        ("foo:été", 0, "unknown field foo:"),
    ],
)
def test_a_field_that_does_not_exist_is_an_error_with_a_suggestion(
    query: str, position: int, reason: str
) -> None:
    """Not a phrase that silently matches nothing forever (``tilte diffusion``)."""
    with pytest.raises(QueryError) as caught:
        validate(query)
    error = caught.value
    assert (error.query, error.position) == (query, position)
    assert reason in error.reason
    assert error.hint and "title:, abstract:, author:" in error.hint
    assert "quote" in error.hint
    assert reason in str(error)


def test_the_hint_shows_the_quoted_text() -> None:
    with pytest.raises(QueryError) as caught:
        parse("llm foo:bar")
    assert caught.value.hint is not None and caught.value.hint.endswith('quote them: "foo:bar"')
    assert parse('"foo:bar"') == Phrase(("foo", "bar"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"foo:bar"', Phrase(("foo", "bar"))),  # quoted: text
        ('"tilte:diffusion"', Phrase(("tilte", "diffusion"))),
        ("C++:", Term("c")),  # not letters before the colon
        ("C++: templates", And((Term("c"), Term("templates")))),
        ("https://arxiv.org/abs/2503", Phrase(("https", "arxiv", "org", "abs", "2503"))),
        ("http://x.org", Phrase(("http", "x", "org"))),
        ("std::vector", Phrase(("std", "vector"))),  # "::": no field
        ("arXiv:2503.01234", Phrase(("arxiv", "2503", "01234"))),  # a digit follows
        ("10:30", Phrase(("10", "30"))),
        ("x:y", Phrase(("x", "y"))),  # one letter: no field
        ("LLaMA: open", And((Term("llama"), Term("open")))),  # a word ending a phrase
        ("Survey: x", And((Term("survey"), Term("x")))),
        ("Note:", Term("note")),
        ("title::a", Field("title", a)),
        ("title:tilte", Field("title", Term("tilte"))),
        ("Title: a", Field("title", a)),
    ],
)
def test_colons_that_are_not_fields_stay_text(query: str, expected: Node) -> None:
    assert parse(query) == expected
    validate(query)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("foo:bar", Phrase(("foo", "bar"))),
        ("tilte:diffusion OR a", Or((Phrase(("tilte", "diffusion")), a))),
        ("title:a", Field("title", a)),
    ],
)
def test_not_strict_reads_a_stored_query_as_it_was_accepted(query: str, expected: Node) -> None:
    """The matcher's reading of queries stored before unknown fields were refused."""
    assert parse(query, strict=False) == expected


def test_validate() -> None:
    validate('"large language model" AND survey')
    with pytest.raises(QueryError):
        validate("a AND")


def test_parse_is_cached_and_nodes_are_frozen() -> None:
    node = parse("cached AND query")
    assert parse("cached AND query") is node
    assert isinstance(node, And)
    with pytest.raises(AttributeError):
        node.operands = ()  # type: ignore[misc]
    assert hash(node) == hash(parse("cached  query"))


def test_max_depth_is_allowed() -> None:
    query = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse(query) == a


def test_leaves() -> None:
    node = parse('title:(a OR "b c") -d* e')
    assert leaves(node) == [a, Phrase(("b", "c")), Prefix("d"), Term("e")]


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("a OR b c", "a OR b c"),
        ("(a OR b) c", "(a OR b) c"),
        ("-(a b)", "NOT (a b)"),
        ("NOT title:a", "NOT title:a"),
        ("title:(a b) OR c", "title:(a b) OR c"),
        ("title:-a", "title:(NOT a)"),
        ("GPT-4*", '"gpt 4*"'),
        ("Agent*", "agent*"),
        ("Naïve", "naive"),
    ],
)
def test_to_text(query: str, text: str) -> None:
    assert to_text(parse(query)) == text
    assert parse(text) == parse(query)


# --- properties ---------------------------------------------------------------

# fmt: off
_PIECES = [
    "a", "b", "LLM", "naïve", "GPT-4", "agent*", "*", "-", "--", "AND", "OR", "NOT", "and",
    "(", ")", '"', ":", "title:", "Author:", "abstract:", "foo:", "x-", "é", "ß", "ﬁ", "½",
    "_", "0", " ", "\t", "\n",
]
# fmt: on


def _soup(codes: bytes) -> str:
    """Query-like text: one piece per byte, glued or spaced by the byte's high bit."""
    return "".join(_PIECES[c % len(_PIECES)] + " " * (c >= 128) for c in codes)


# one drawn byte string per example: cheap to draw, and it shrinks well
query_soup = st.binary(max_size=16).map(_soup)


def _parse_or_error(text: str) -> Node | None:
    try:
        node = parse(text)
    except QueryError as error:
        assert error.query == text
        assert 0 <= error.position <= max(len(text) - 1, 0)
        assert error.reason
        return None
    assert isinstance(node, Term | Prefix | Phrase | Not | And | Or | Field)
    return node


@given(st.text())
def test_any_text_parses_or_raises_query_error(text: str) -> None:
    _parse_or_error(text)


@given(query_soup)
def test_token_soup_parses_or_raises_query_error(text: str) -> None:
    _parse_or_error(text)


@given(query_soup | st.text())
def test_to_text_round_trips(text: str) -> None:
    node = _parse_or_error(text)
    if node is not None:
        assert parse(to_text(node)) == node


@given(query_soup)
def test_parsed_words_are_folded_and_nonempty(text: str) -> None:
    node = _parse_or_error(text)
    if node is None:
        return
    for leaf in leaves(node):
        found = [leaf.word] if isinstance(leaf, Term) else []
        found += [leaf.stem] if isinstance(leaf, Prefix) else []
        found += leaf.words if isinstance(leaf, Phrase) else []
        assert found
        for word in found:
            assert word and word == word.casefold() and word.isalnum()
