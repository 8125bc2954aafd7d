"""Building the message bytes: structure, encodings, and the header traps."""

from __future__ import annotations

import binascii
import email
import email.policy
import re
from datetime import UTC, date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import digest.compose.message as message
from digest.compose import (
    Body,
    EmailLinks,
    Renderer,
    build_message,
    clean_for_smtp,
    clean_header_text,
    encode_body,
    encoded_size,
    list_id_for,
    make_message_id,
    quoted_printable,
)
from digest.errors import PermanentDeliveryError
from digest.models import Match, Paper, Span, Subscriber
from tests.support.mime import dot_lines

SENDER = "Paper Digest <digest@example.org>"
WHEN = datetime(2026, 11, 22, 7, 30, tzinfo=timezone(timedelta(hours=1)))
LONG_UNSUBSCRIBE = "https://digest.example.org/unsubscribe?token=" + "Ab9_-" * 60 + ".sig"
EXPECTED_HEADERS = [
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post", "Auto-Submitted", "Precedence", "Content-Type",
]  # fmt: skip


def build(**changes: object) -> bytes:
    args: dict[str, object] = {
        "sender": SENDER,
        "to": "ada@example.org",
        "to_name": "Ada Okafor",
        "subject": "Paper Digest for 22 Nov 2026: 7 new papers",
        "text": "Hello\nplain text\n",
        "html": "<p>Hello</p>\n",
        "message_id": "<2026-11-22.1.abc@example.org>",
        "date": WHEN,
        "list_id": "Paper Digest <digest.example.org>",
        "unsubscribe_url": "https://digest.example.org/unsubscribe?token=abc.def",
        "unsubscribe_mailto": "unsubscribe@example.org",
    }
    args.update(changes)
    return build_message(**args)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def check_wire_format(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()


def test_message_round_trips() -> None:
    raw = build(text="Héllo wörld\nline two\n", html="<p>Héllo = wörld</p>\n")
    check_wire_format(raw)
    message = parse(raw)
    assert list(message.keys()) == EXPECTED_HEADERS
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == "Héllo wörld\nline two\n"
    assert html.get_content().replace("\r\n", "\n") == "<p>Héllo = wörld</p>\n"
    assert message["From"].addresses[0].addr_spec == "digest@example.org"
    assert message["To"].addresses[0].display_name == "Ada Okafor"
    assert str(message["Subject"]) == "Paper Digest for 22 Nov 2026: 7 new papers"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.defects == [] and plain.defects == [] and html.defects == []


def test_raw_headers_are_byte_exact() -> None:
    head = header_block(build(unsubscribe_url=LONG_UNSUBSCRIBE))
    assert head.split(b"\r\n") == [
        b"From: Paper Digest <digest@example.org>",
        b"To: Ada Okafor <ada@example.org>",
        b"Subject: Paper Digest for 22 Nov 2026: 7 new papers",
        b"Date: Sun, 22 Nov 2026 07:30:00 +0100",
        b"Message-ID: <2026-11-22.1.abc@example.org>",
        b"MIME-Version: 1.0",
        b"List-Id: Paper Digest <digest.example.org>",
        b"List-Unsubscribe: <" + LONG_UNSUBSCRIBE.encode() + b">,",
        b" <mailto:unsubscribe@example.org?subject=unsubscribe>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"Auto-Submitted: auto-generated",
        b"Precedence: bulk",
        b'Content-Type: multipart/alternative; boundary="=_4cce7d3baca45c870c652cef"',
    ]


def test_long_list_unsubscribe_survives_parsing() -> None:
    message = parse(build(unsubscribe_url=LONG_UNSUBSCRIBE))
    value = str(message["List-Unsubscribe"])
    assert "=?" not in value
    assert re.findall(r"<([^>]*)>", value) == [
        LONG_UNSUBSCRIBE,
        "mailto:unsubscribe@example.org?subject=unsubscribe",
    ]


def test_one_click_only_for_https_and_mailto_uri_kept() -> None:
    message = parse(
        build(
            unsubscribe_url="http://localhost:8000/unsubscribe?token=x",
            unsubscribe_mailto="mailto:leave@example.org?subject=stop",
        )
    )
    assert "List-Unsubscribe-Post" not in message
    assert str(message["List-Unsubscribe"]) == (
        "<http://localhost:8000/unsubscribe?token=x>, <mailto:leave@example.org?subject=stop>"
    )


def test_no_list_unsubscribe_for_someone_not_on_the_list() -> None:
    """A one-off ``digest send`` to a non-subscriber: nothing to unsubscribe from."""
    raw = build(unsubscribe_url=None, unsubscribe_mailto=None)
    check_wire_format(raw)
    message = parse(raw)
    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message
    assert message["List-Id"] == "Paper Digest <digest.example.org>"
    only_mailto = parse(build(unsubscribe_url=None))
    assert "List-Unsubscribe-Post" not in only_mailto
    assert str(only_mailto["List-Unsubscribe"]) == (
        "<mailto:unsubscribe@example.org?subject=unsubscribe>"
    )


@pytest.mark.parametrize("hostile", [
    "=?UTF-8?Q?=0A?=Bcc: evil@example.com",
    "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=",
    "=?utf-8?b?DQpCY2M6IGV2aWxAZXhhbXBsZS5jb20=?=",
    "Hi\r\nBcc: evil@example.com",
    "Hi\nBcc: evil@example.com\r\n\r\nbody",
    "Hi\x00\x0b\x1b\u2028Bcc: evil@example.com",
])  # fmt: skip
def test_no_header_injection_through_subject_or_name(hostile: str) -> None:
    raw = build(subject=hostile, to_name=hostile, list_id=f"{hostile} <digest.example.org>")
    check_wire_format(raw)
    message = parse(raw)
    assert list(message.keys()) == EXPECTED_HEADERS
    for name in ("Subject", "To", "List-Id"):
        value = str(message[name])
        assert "\n" not in value and "\r" not in value
    if "evil" in hostile:
        assert "evil" in str(message["Subject"])  # the text stays, harmless
    assert message["To"].addresses[0].addr_spec == "ada@example.org"
    # A generator that re-flattens our message finds nothing to smuggle either.
    again = parse(message.as_bytes(policy=email.policy.SMTP))
    assert list(again.keys()) == EXPECTED_HEADERS


def test_encoded_words_are_neutralised() -> None:
    assert clean_header_text("a =?UTF-8?Q?=0A?= b\r\nc") == "a = ?UTF-8?Q?=0A?= b c"
    head = header_block(build(to_name="=?UTF-8?Q?=0A?="))
    assert b"=?UTF-8?Q?=0A?=" not in head


def test_non_ascii_subject_and_name_are_rfc2047_encoded() -> None:
    subject = "Résumé des articles du 22 novembre 2026 : 7 nouveaux articles — 日本語の論文も"
    raw = build(subject=subject, to_name="Zoë Ñúñez-Łukasiewicz")
    check_wire_format(raw)
    head = header_block(raw).decode("ascii")
    assert "=?utf-8?q?" in head or "=?utf-8?b?" in head
    lines = head.split("\r\n")
    assert all(len(line) <= 78 for line in lines)
    message = parse(raw)
    assert str(message["Subject"]) == subject
    assert message["To"].addresses[0].display_name == "Zoë Ñúñez-Łukasiewicz"


@pytest.mark.parametrize(("name", "raw_to"), [
    ("Ada", b"To: Ada <ada@example.org>"),
    ('Ada "The Countess", Lovelace', b'To: "Ada \\"The Countess\\", Lovelace" <ada@example.org>'),
    ("Dr. Ada <ada@evil.example>", b'To: "Dr. Ada <ada@evil.example>" <ada@example.org>'),
    (None, b"To: <ada@example.org>"),
    ("", b"To: <ada@example.org>"),
])  # fmt: skip
def test_display_names_are_quoted_when_needed(name: str | None, raw_to: bytes) -> None:
    raw = build(to_name=name)
    assert raw_to in header_block(raw).split(b"\r\n")
    addresses = parse(raw)["To"].addresses
    assert len(addresses) == 1 and addresses[0].addr_spec == "ada@example.org"
    assert addresses[0].display_name == (name or "")


def test_date_and_message_id() -> None:
    message = parse(build())
    assert parsedate_to_datetime(str(message["Date"])) == WHEN
    assert str(message["Message-ID"]) == "<2026-11-22.1.abc@example.org>"
    made = make_message_id(SENDER)
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", made)
    assert made != make_message_id(SENDER)
    assert make_message_id(SENDER, "2026-11-22.42") == "<2026-11-22.42@example.org>"
    assert parse(build(message_id=made))["Message-ID"] == made  # kept as given across retries
    with pytest.raises(ValueError):
        make_message_id(SENDER, "a b")
    with pytest.raises(ValueError):
        build(date=datetime(2026, 11, 22, 7, 30))  # naive
    with pytest.raises(ValueError):
        build(message_id="<no-at-sign>")
    # The same instant in another zone keeps its own offset (headers are cached per run).
    paris = WHEN.astimezone(timezone(timedelta(hours=-5)))
    assert parse(build(date=paris))["Date"] != parse(build())["Date"]
    assert str(parse(build(date=paris))["Date"]).endswith("-0500")
    with pytest.raises(ValueError):  # a refused sender is refused every time, not cached
        build(sender="Nobody <not an address>")
    with pytest.raises(ValueError):
        build(sender="Nobody <not an address>")


def test_list_id_for_sender() -> None:
    assert list_id_for(SENDER) == "Paper Digest <digest.example.org>"
    assert list_id_for("news+x@mail.example.org") == "<news-x.mail.example.org>"
    with pytest.raises(ValueError):
        build(list_id="not an id")


def test_recipients_that_cannot_be_written_are_refused() -> None:
    for bad in (
        "ada",
        "ada@",
        "a b@example.org",
        "ada@example.org>\r\nBcc: x@y",
        "añа@example.org",
    ):
        with pytest.raises(PermanentDeliveryError) as error:
            build(to=bad)
        assert error.value.recipient == bad
    raw = build(to="ada@bücher.example")
    assert parse(raw)["To"].addresses[0].addr_spec == "ada@xn--bcher-kva.example"


def test_extra_headers() -> None:
    message = parse(build(extra_headers=[("X-Digest-Date", "2026-11-22\r\nBcc: x@y")]))
    assert str(message["X-Digest-Date"]) == "2026-11-22 Bcc: x@y" and "Bcc" not in message
    for name in ("Subject", "Bad Name", "X:Y", ""):
        with pytest.raises(ValueError):
            build(extra_headers=[(name, "v")])


def test_bodies_choose_quoted_printable_or_base64() -> None:
    body = encode_body("ascii text = with an equals sign " * 10)
    assert body.encoding == "quoted-printable" and b"=3D" in body.data
    assert all(len(line) <= 76 for line in body.data.split(b"\r\n"))
    cjk = encode_body("日本語の論文の要約です。" * 40)
    assert cjk.encoding == "base64"
    assert all(len(line) <= 76 for line in cjk.data.split(b"\r\n"))
    assert encoded_size("日本語の論文の要約です。" * 40) == len(cjk.data)
    raw = build(text="日本語の論文の要約です。\n" * 40)
    plain = next(parse(raw).iter_parts())
    assert plain["Content-Transfer-Encoding"] == "base64"
    assert plain.get_content().replace("\r\n", "\n") == "日本語の論文の要約です。\n" * 40


@pytest.mark.parametrize(
    ("data", "dotted"),
    [
        (b"line\r\nline\r\n", False),
        (b".first\r\n", True),
        (b"a\r\n.b\r\n", True),
        (b"a.\r\nb .c\r\n", False),
        (b"a\r\n.", True),
    ],
)
def test_dot_lines(data: bytes, dotted: bool) -> None:
    assert dot_lines(data) is dotted


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("ab .=\té€\n"), max_size=400), st.booleans())
def test_quoted_printable_never_starts_a_line_with_a_dot(text: str, dot: bool) -> None:
    """SMTP would have to dot-stuff such a line; ours are written ``=2E`` instead, and a
    line that grows past 76 characters by it is split with a soft break."""
    text = "." + text if dot else text
    qp = quoted_printable(text)
    plain = binascii.b2a_qp(text.encode(), istext=True).replace(b"\n", b"\r\n")
    assert not dot_lines(qp)
    longest = max(len(line) for line in qp.split(b"\r\n"))
    assert longest <= max(76, *(len(line) for line in plain.split(b"\r\n")))
    assert binascii.a2b_qp(qp.replace(b"\r\n", b"\n")) == text.encode()


@settings(max_examples=300)
@given(st.lists(st.text(alphabet=st.sampled_from("ab.= "), max_size=90), max_size=8))
def test_dotted_lines_are_found_without_a_regular_expression(lines: list[str]) -> None:
    qp = "\r\n".join(lines).encode()
    line = re.compile(rb"(?:^|(?<=\n))\.[^\r\n]*")  # the line-start rule, as a regex
    expected = line.sub(lambda m: b"\r\n".join(message._undot(m.group())), qp)
    assert message._undotted(qp) == expected


def test_bodies_know_whether_smtp_must_dot_stuff_them() -> None:
    assert not encode_body("plain text\nand more. Here.\n").dotted
    assert not encode_body("a\n.NET and .\n").dotted  # written =2E
    assert not encode_body("x" * 75 + ".y\n").dotted  # no soft break just before a dot
    assert not encode_body("日本語の論文の要約です。\n.x\n" * 40).dotted  # base64
    assert Body("quoted-printable", b"x\r\n").dotted  # unknown: assume it may be
    clean, dotted = encode_body("fine\n"), Body("quoted-printable", b"a\r\n.b\r\n")
    assert clean_for_smtp(clean, clean)
    assert not clean_for_smtp(clean, dotted)
    assert not clean_for_smtp("a string body", clean)  # not encoded yet: unknown


def test_lines_that_look_like_boundaries_stay_in_the_body() -> None:
    text = "--=_4cce7d3baca45c870c652cef\n--=_4cce7d3baca45c870c652cef--\n.\nFrom me\n"
    plain, html = parse(build(text=text)).iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == text
    assert html.get_content().replace("\r\n", "\n") == "<p>Hello</p>\n"


# -- the whole way: listing text -> rendered email -> bytes -> parsed ------------------------

RENDERER = Renderer()
ANY_TEXT = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from("\r\n\x00\u202e=?<>\"'&"),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=ANY_TEXT, abstract=ANY_TEXT, author=ANY_TEXT, name=ANY_TEXT, query=ANY_TEXT)
def test_any_listing_text_gives_a_parseable_message_with_only_our_headers(
    title: str, abstract: str, author: str, name: str, query: str
) -> None:
    paper = Paper(key="2511.00001", arxiv_id="2511.00001", title=title or "t",
                  abstract=abstract, authors=(author,), project_page=author)  # fmt: skip
    spans = (Span("title", 0, len(title) // 2), Span("abstract", 1, len(abstract)))
    subscriber = Subscriber(email="ada@example.org", name=name, keywords=(query,))
    rendered = RENDERER.render_digest(
        day=date(2026, 11, 22), subscriber=subscriber,
        matches=[Match(paper, 1.0, (query,), spans)],
        links=EmailLinks("https://digest.example.org/u?t=1"), total_in_listing=1, max_papers=None,
    )  # fmt: skip
    raw = build_message(
        sender=SENDER, to=subscriber.email, to_name=name, subject=title + rendered.subject,
        text=rendered.text_body, html=rendered.html_body, message_id=make_message_id(SENDER),
        date=datetime(2026, 11, 22, tzinfo=UTC), list_id=list_id_for(SENDER),
        unsubscribe_url="https://digest.example.org/u?t=1", extra_headers=[("X-Query", query)],
    )  # fmt: skip
    check_wire_format(raw)
    message = parse(raw)
    assert list(message.keys()) == [*EXPECTED_HEADERS[:-1], "X-Query", "Content-Type"]
    assert str(message["Subject"]) == clean_header_text(title + rendered.subject)
    assert [a.addr_spec for a in message["To"].addresses] == ["ada@example.org"]
    plain, html = message.iter_parts()
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
