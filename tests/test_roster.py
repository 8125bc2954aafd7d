"""Subscriber files parsed and checked without a database: CSV, JSON Lines, bad rows."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import Invalid, normalise_address, roster
from digest.errors import RosterError
from digest.models import Subscriber

HEADER = "email,name,keywords,exclude\n"


def csv_of(text: str) -> roster.Roster:
    return roster.read(text, "csv", "people.csv")


def jsonl_of(*lines: object) -> roster.Roster:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    return roster.read(text, "jsonl", "people.jsonl")


def messages(r: roster.Roster) -> list[str]:
    return [str(e) for e in r.errors]


def test_csv_rows_become_subscribers() -> None:
    r = csv_of(
        HEADER + "Ada@Example.ORG,Ada,diffusion; llm agent*,survey;  medical \nbob@example.org,,,\n"
    )
    assert r.errors == () and r.duplicates == ()
    assert r.subscribers == (
        Subscriber(
            email="ada@example.org",
            name="Ada",
            keywords=("diffusion", "llm agent*"),
            exclude=("survey", "medical"),
        ),
        Subscriber(email="bob@example.org"),
    )


def test_quoted_fields_carry_commas_semicolons_quotes_and_line_breaks() -> None:
    r = csv_of(
        HEADER + '"dee@example.org","Okafor, Dee","""mixture of experts""; title:(a OR b)",\n'
    )
    assert r.errors == ()
    (sub,) = r.subscribers
    assert sub.name == "Okafor, Dee"
    assert sub.keywords == ('"mixture of experts"', "title:(a OR b)")


def test_byte_order_mark_and_non_ascii_names() -> None:
    data = ("\ufeff" + HEADER + "zoe@example.org,Zoë Müller-李,diffusion,\n").encode()
    r = roster.read(roster.decode(data, "x.csv"), "csv")
    assert r.errors == ()
    assert r.subscribers[0].name == "Zoë Müller-李"


def test_header_is_case_and_space_insensitive_and_only_email_is_required() -> None:
    r = csv_of(" Email , MAX_PAPERS\nada@example.org, 25\n")
    assert r.subscribers == (Subscriber(email="ada@example.org", max_papers=25),)


def test_status_column_is_accepted_and_ignored() -> None:
    r = csv_of("email,status\nada@example.org,unsubscribed\n")
    assert r.errors == ()
    assert r.subscribers[0].status == "active"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: no header line"),
        ("\n", "line 1: no header line"),
        ("email,emial,foo\n", 'unknown column(s) "emial" (did you mean "email"?), "foo"'),
        ("name,keywords\n", "no email column"),
        ("email,name,email\n", "column(s) twice: email"),
    ],
)
def test_a_wrong_header_is_an_error_for_the_whole_file(text: str, message: str) -> None:
    with pytest.raises(RosterError) as err:
        csv_of(text)
    assert message in str(err.value)
    assert str(err.value).startswith("people.csv: line 1: ")


def test_text_that_is_not_utf8_names_its_line() -> None:
    with pytest.raises(RosterError, match=r"x.csv: line 3: not UTF-8 text"):
        roster.decode(b"email\na@example.org\nb\xe9@example.org\n", "x.csv")


def test_bad_rows_are_reported_with_line_and_reason_and_the_rest_kept() -> None:
    r = csv_of(
        HEADER
        + "ada@example.org,Ada,diffusion,\n"  # line 2
        + "not-an-address,Bob,,\n"  # line 3
        + "cy@example.org,Cy,(a OR b,\n"  # line 4
        + ",Nobody,,\n"  # line 5
        + "dee@example.org,Dee,ok;AND,NOT\n"  # line 6: two bad queries
        + "eve@example.org,Eve\n"  # line 7: too few fields
        + "fay@example.org,Fay,,,extra\n"  # line 8: too many
    )
    assert [s.email for s in r.subscribers] == ["ada@example.org"]
    assert r.rejected == 6
    got = messages(r)
    assert got[0].startswith('line 3: email: "not-an-address": expected an email address')
    assert got[1:] == [
        'line 4: keywords: "(a OR b": unclosed parenthesis at 0',
        "line 5: email: missing: every subscriber needs one",
        'line 6: keywords: "AND": AND must come between two terms at 0',
        'line 6: exclude: "NOT": NOT must be followed by a term, phrase or group at 0',
        "line 7: expected 4 fields, found 2",
        "line 8: expected 4 fields, found 5",
    ]


def test_line_numbers_count_physical_lines_across_quoted_line_breaks() -> None:
    r = csv_of(HEADER + 'ada@example.org,"Ada\nLovelace",,\n\nbad,,,\n')
    # line 2-3: a name with a line break (rejected); line 4 blank; line 5 a bad address
    assert [e.line for e in r.errors] == [2, 5]
    assert messages(r)[0] == 'line 2: name: "Ada\\nLovelace": has a line break or control character'


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1", 1), ("10000", 10000), (" 30 ", 30), ("", None), ("0", False), ("x", False)],
)
def test_max_papers_range(value: str, ok: int | bool | None) -> None:
    r = csv_of(f"email,max_papers\nada@example.org,{value}\n")
    if ok is False:
        assert messages(r) == [f'line 2: max_papers: "{value}": expected an integer 1-10000']
    else:
        assert r.subscribers[0].max_papers == ok


def test_duplicate_addresses_the_last_wins_with_a_warning_naming_both_lines() -> None:
    r = csv_of(
        HEADER
        + "ada@example.org,First,,\n"
        + "bob@example.org,Bob,,\n"
        + "ADA@example.org,Second,,\n"
    )
    assert [(s.email, s.name) for s in r.subscribers] == [
        ("ada@example.org", "Second"),
        ("bob@example.org", "Bob"),
    ]
    assert [str(d) for d in r.duplicates] == [
        "line 4: ada@example.org also on line 2; the later line wins"
    ]


def test_a_rejected_later_duplicate_leaves_the_earlier_row() -> None:
    r = csv_of(HEADER + "ada@example.org,Ada,,\nada@example.org,Ada,(,\n")
    assert r.subscribers[0].name == "Ada"
    assert r.duplicates == () and r.rejected == 1


def test_jsonl_accepts_lists_or_semicolon_strings() -> None:
    r = jsonl_of(
        {"email": "ada@example.org", "name": "Ada", "keywords": ["a;b is one", "llm"]},
        "",
        {"email": "bob@example.org", "keywords": "x; y", "exclude": None, "max_papers": 5},
        {"email": "cy@example.org", "status": "unsubscribed", "name": None},
    )
    assert r.errors == ()
    assert [s.keywords for s in r.subscribers] == [("a;b is one", "llm"), ("x", "y"), ()]
    assert r.subscribers[1].max_papers == 5


def test_jsonl_bad_lines() -> None:
    r = jsonl_of(
        {"email": "ada@example.org"},  # 1
        "{not json",  # 2
        "[1, 2]",  # 3
        {"email": "bob@example.org", "emial": "x", "colour": "red"},  # 4
        {"email": "cy@example.org", "keywords": [1]},  # 5
        {"email": "dee@example.org", "max_papers": "5"},  # 6: a number in a string will do
        {"email": "eve@example.org", "max_papers": True},  # 7
        {"email": 7},  # 8
        {"email": "fay@example.org", "name": ["F"]},  # 9
    )
    assert [s.email for s in r.subscribers] == ["ada@example.org", "dee@example.org"]
    got = messages(r)
    assert got[0].startswith("line 2: not JSON: ")
    assert got[1:] == [
        "line 3: expected a JSON object {...}",
        'line 4: unknown field "emial" (did you mean "email"?)',
        'line 4: unknown field "colour"',
        "line 5: keywords: expected a list of query strings",
        'line 7: max_papers: "true": expected an integer 1-10000',
        "line 8: email: missing: every subscriber needs one",
        "line 9: name: expected a string",
    ]
    assert r.subscribers[1].max_papers == 5
    assert r.rejected == 7


def test_long_bad_values_are_shortened_in_messages() -> None:
    r = csv_of("email\n" + "x" * 500 + "\n")
    assert len(messages(r)[0]) < 200


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("A.CSV", "csv"), ("x/y.jsonl", "jsonl"), ("b.ndjson", "jsonl")],
)
def test_format_from_extension(name: str, fmt: str) -> None:
    assert roster.format_for(name) == fmt


@pytest.mark.parametrize("name", ["people.txt", "csv", ".csv", "-"])
def test_no_format_from_other_names(name: str) -> None:
    assert roster.format_for(name) is None


def test_export_csv_is_readable_by_spreadsheets() -> None:
    subs = [Subscriber(email="ada@example.org", name="Okafor, Ada", keywords=('"a b"', "c"))]
    assert "".join(roster.export_lines(subs, "csv")) == (
        "email,name,keywords,exclude,max_papers,abstract,send_at,timezone,frequency,weekday,"
        "days,sources,like,like_threshold,status\n"
        'ada@example.org,"Okafor, Ada","""a b"";c",,,,,,,,,,,,active\n'
    )


def test_export_problem_only_for_a_semicolon_in_csv() -> None:
    sub = Subscriber(email="ada@example.org", keywords=("a;b",))
    assert roster.export_problem(sub, "jsonl") is None
    assert "has a ';'" in (roster.export_problem(sub, "csv") or "")
    assert roster.export_problem(Subscriber(email="b@example.org"), "csv") is None


_QUERIES = st.sampled_from(
    ["diffusion", "llm agent*", '"mixture of experts"', "title:(a OR b)", "-survey", "GPT-4"]
)
_NAMES = st.none() | st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).map(str.strip).filter(bool)
_SUBSCRIBER = st.builds(
    Subscriber,
    email=st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z]@example\.org", fullmatch=True).filter(
        lambda e: ".." not in e
    ),
    name=_NAMES,
    keywords=st.lists(_QUERIES, max_size=3, unique=True).map(tuple),
    exclude=st.lists(_QUERIES, max_size=2, unique=True).map(tuple),
    max_papers=st.none() | st.integers(1, 10_000),
    send_at=st.none() | st.sampled_from(["00:00", "06:30", "23:59"]),
    timezone=st.none() | st.sampled_from(["UTC", "Europe/Berlin", "America/Argentina/Salta"]),
    frequency=st.none() | st.sampled_from(["daily", "weekly"]),
    weekday=st.none() | st.sampled_from(["mon", "sun"]),
    days=st.none() | st.sampled_from([("mon",), ("mon", "wed", "fri"), ("sat", "sun")]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_SUBSCRIBER, max_size=8, unique_by=lambda s: s.email),
    st.sampled_from(["csv", "jsonl"]),
)
def test_export_then_read_is_the_identity(subs: list[Subscriber], fmt: str) -> None:
    r = roster.read("".join(roster.export_lines(subs, fmt)), fmt)
    assert r.errors == () and r.duplicates == ()
    assert list(r.subscribers) == subs


def _either(fn: Callable[[str], str], value: str) -> str:
    try:
        return fn(value)
    except Invalid:
        return "invalid"


_LOCALS = st.text(st.sampled_from("aZ09._+-é\"' @"), min_size=0, max_size=70)
_DOMAINS = st.sampled_from(
    ["example.org", "EXAMPLE.org", "münchen.de", "xn--mnchen-3ya.de", "localhost", "x.test"]
) | st.from_regex(r"[a-z0-9.-]{1,20}\.[a-z]{0,4}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(_LOCALS, _DOMAINS, st.sampled_from(["", " "]))
def test_check_address_agrees_with_normalise_address(local: str, domain: str, pad: str) -> None:
    value = f"{pad}{local}@{domain}{pad}"
    assert _either(roster.check_address, value) == _either(normalise_address, value)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-survey", "'-survey"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("'=1", "''=1"),  # one more quote, so that the import gives back exactly this
        ("'s-Gravesande", "'s-Gravesande"),
        ("Ada", "Ada"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_csv_cells_a_spreadsheet_would_run_get_a_quote(value: str, written: str) -> None:
    assert roster.neutralise(value) == written
    assert roster.restore(written) == value


_CELLS = st.text(st.sampled_from("'=+-@\t\rab;"), max_size=6)


@settings(max_examples=300, deadline=None)
@given(_CELLS)
def test_restore_undoes_neutralise_and_nothing_written_starts_a_formula(value: str) -> None:
    written = roster.neutralise(value)
    assert roster.restore(written) == value
    assert written[:1] not in ("=", "+", "-", "@", "\t", "\r")


def test_export_neutralises_every_text_cell_and_reads_back() -> None:
    sub = Subscriber(
        email="-x@example.org", name="=HYPERLINK(1)", keywords=("-survey", "llm"), exclude=("@a",)
    )
    text = "".join(roster.export_lines([sub], "csv"))
    assert text.splitlines()[1] == (
        "'-x@example.org,'=HYPERLINK(1),'-survey;llm,'@a,,,,,,,,,,,active"
    )
    assert roster.read(text, "csv").subscribers == (sub,)


def test_the_abstract_column_is_checked_and_round_trips() -> None:
    r = csv_of(
        "email,abstract\n"
        "a@example.org,short\nb@example.org, None \nc@example.org,\nd@example.org,brief\n"
    )
    assert [(s.email, s.abstract) for s in r.subscribers] == [
        ("a@example.org", "short"),
        ("b@example.org", "none"),
        ("c@example.org", None),
    ]
    [error] = r.errors
    assert (error.line, error.field, error.value) == (5, "abstract", "brief")
    assert '"full", "short", "none"' in error.reason
    assert [e.field for e in jsonl_of({"email": "a@example.org", "abstract": 3}).errors] == [
        "abstract"
    ]
    subs = (Subscriber("a@example.org", abstract="full"), Subscriber("b@example.org"))
    for fmt in ("csv", "jsonl"):
        text = "".join(roster.export_lines(subs, fmt))
        assert roster.read(text, fmt).subscribers == subs


def test_schedule_columns_are_checked_per_row_and_mark_the_file() -> None:
    r = jsonl_of(
        {"email": "a@example.org", "send_at": "7:05", "days": ["fri", "Monday"]},
        {"email": "b@example.org", "timezone": "Mars/Olympus", "weekday": 3},
        {"email": "c@example.org", "frequency": None, "send_at": ""},
    )
    assert r.schedule
    assert [(s.email, s.send_at, s.days) for s in r.subscribers] == [
        ("a@example.org", "07:05", ("mon", "fri")),
        ("c@example.org", None, None),
    ]
    assert [e.field for e in r.errors] == ["timezone", "weekday"] and r.rejected == 1
    assert not csv_of(HEADER + "a@example.org,,,,\n").schedule
    assert csv_of("email,days\na@example.org,\n").schedule
