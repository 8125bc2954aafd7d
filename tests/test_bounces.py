"""The bounce mailbox's pure parts: VERP tokens (digest.compose.verp) and the classifier
(digest.mailbox.classify) over the RFCs' own examples, the common non-standard bounces, and
hypothesis over arbitrary and generated messages."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.compose import (
    delivery_token,
    read_token,
    tokens_in,
    unsubscribe_token,
    verp_address,
)
from digest.mailbox import (
    Bounce,
    Complaint,
    Unmatched,
    Unsubscribe,
    classify,
    message_key,
)
from tests.support import bounces as mail

SECRET = b"k" * 43
BOUNCES = "bounces@example.org"
DELIVERY = "0189abcdef0123456789abcdef012345"
ENVELOPE = verp_address(BOUNCES, delivery_token(SECRET, DELIVERY))
MESSAGE_ID = "<2026-12-07.42.a1b2c3@example.org>"
ORIGINAL = mail.original(envelope=ENVELOPE, to="ada@example.net", message_id=MESSAGE_ID)
TOKEN = ENVELOPE.split("+")[1].split("@")[0]

delivery_ids = st.text("0123456789abcdef", min_size=32, max_size=32)


# -- tokens -------------------------------------------------------------------------------


@given(delivery_ids, st.integers(1, 2**63 - 1))
def test_tokens_name_what_they_were_made_for_and_fit_an_address(
    delivery_id: str, subscriber_id: int
) -> None:
    d = delivery_token(SECRET, delivery_id)
    u = unsubscribe_token(SECRET, subscriber_id)
    assert d is not None
    ref = read_token(SECRET, d)
    assert ref is not None and ref.delivery_id == delivery_id and ref.subscriber_id is None
    ref = read_token(SECRET, u.upper())  # a server may fold the case
    assert ref is not None and ref.subscriber_id == subscriber_id and ref.delivery_id is None
    for token in (d, u):
        assert set(token) <= set(string.ascii_lowercase + "234567")
        assert len(verp_address(BOUNCES, token).split("@")[0]) <= 64  # RFC 5321 §4.5.3.1.1


@given(delivery_ids, st.integers(0, 39), st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"))
def test_a_token_changed_in_one_place_or_signed_with_another_secret_names_nothing(
    delivery_id: str, at: int, char: str
) -> None:
    token = delivery_token(SECRET, delivery_id)
    assert token is not None
    assert read_token(b"another secret of some length....", token) is None
    changed = token[:at] + char + token[at + 1 :]
    if changed != token:
        assert read_token(SECRET, changed) is None


@given(st.text(max_size=80))
def test_read_token_never_raises(text: str) -> None:
    read_token(SECRET, text)


def test_verp_addresses_are_found_in_any_case_and_only_for_our_mailbox() -> None:
    text = (
        f"To: <{ENVELOPE.upper()}>\nX: other+{TOKEN}@example.org, bounces+{TOKEN}@example.org.uk"
        f" notbounces+{TOKEN}@example.org {ENVELOPE}"
    )
    assert tokens_in(text, BOUNCES) == [TOKEN]
    assert delivery_token(SECRET, "manual") is None  # not a delivery id: no token
    assert verp_address(BOUNCES, None) == BOUNCES


# -- the RFCs' examples and the common forms ----------------------------------------------


def test_an_rfc3464_permanent_failure_is_a_hard_bounce_naming_the_delivery() -> None:
    verdict = classify(mail.dsn(to=ENVELOPE, returned=ORIGINAL), BOUNCES)
    assert isinstance(verdict, Bounce)
    assert verdict.hard and verdict.kind == "hard" and verdict.status == "5.1.1"
    assert verdict.recipient == "ada@example.net"
    assert "Recipient address rejected" in verdict.diagnostic
    assert verdict.refs.tokens == (TOKEN,)
    assert verdict.refs.message_ids == (MESSAGE_ID,)  # the original's, not the report's


@pytest.mark.parametrize(
    ("action", "status"), [("failed", "4.0.0"), ("delayed", "4.4.7"), ("delayed", "5.0.0")]
)
def test_a_temporary_failure_or_a_delay_is_a_soft_bounce(action: str, status: str) -> None:
    """RFC 3464's own example: Action failed, Status 4.0.0 (timed out for 5 days)."""
    raw = mail.dsn(to=ENVELOPE, action=action, status=status, diagnostic="smtp; 426 timed out")
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Bounce) and not verdict.hard and verdict.kind == "soft"
    assert verdict.refs.tokens == (TOKEN,)


def test_an_rfc6533_internationalised_dsn_is_read_as_well() -> None:
    raw = (
        mail.dsn(to=BOUNCES, returned=ORIGINAL.split("\n\n")[0] + "\n", headers_only=True)
        .replace(b"report-type=delivery-status", b"report-type=global-delivery-status")
        .replace(b"message/delivery-status", b"message/global-delivery-status")
        .replace(b"text/rfc822-headers", b"message/global-headers")
    )
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Bounce) and verdict.hard and verdict.status == "5.1.1"
    assert verdict.refs.tokens == (TOKEN,) and verdict.refs.message_ids == (MESSAGE_ID,)


def test_a_report_of_delivery_is_not_a_bounce() -> None:
    verdict = classify(mail.dsn(to=ENVELOPE, action="delivered", status="2.0.0"), BOUNCES)
    assert isinstance(verdict, Unmatched)


def test_a_dsn_to_the_plain_address_is_matched_by_the_returned_headers() -> None:
    """RFC 6522 text/rfc822-headers: only the returned headers name the digest."""
    raw = mail.dsn(to=BOUNCES, returned=ORIGINAL.split("\n\n")[0] + "\n", headers_only=True)
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Bounce) and verdict.hard
    assert verdict.refs.tokens == (TOKEN,) and verdict.refs.message_ids == (MESSAGE_ID,)


def test_an_rfc5965_abuse_report_is_a_complaint_naming_the_delivery() -> None:
    verdict = classify(mail.arf(mail_from=ENVELOPE, returned=ORIGINAL), BOUNCES)
    assert verdict == Complaint(
        feedback_type="abuse",
        recipient="user@example.com",
        refs=verdict.refs,  # type: ignore[union-attr]
    )
    assert isinstance(verdict, Complaint)
    assert verdict.refs.tokens == (TOKEN,) and MESSAGE_ID in verdict.refs.message_ids


def test_the_rfc5965_example_as_it_is_is_a_complaint_that_names_nothing_of_ours() -> None:
    verdict = classify(mail.arf(), BOUNCES)
    assert isinstance(verdict, Complaint)
    assert verdict.refs.tokens == () and verdict.refs.message_ids == ()


def test_a_feedback_report_without_its_type_is_left_alone() -> None:
    raw = mail.arf(mail_from=ENVELOPE).replace(b"Feedback-Type: abuse\r\n", b"")
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Unmatched) and "Feedback-Type" in verdict.reason


@pytest.mark.parametrize("kind", ["not-spam", "auth-failure"])
def test_feedback_that_is_not_a_complaint_is_left_alone(kind: str) -> None:
    verdict = classify(mail.arf(mail_from=ENVELOPE, feedback_type=kind), BOUNCES)
    assert isinstance(verdict, Unmatched) and kind in verdict.reason


def test_qmails_failure_notice_is_a_hard_bounce_found_in_the_quoted_copy() -> None:
    raw = mail.qmail_bounce(to=BOUNCES, recipient="ada@example.net", returned=ORIGINAL)
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Bounce) and verdict.hard and verdict.status == "5.1.1"
    assert verdict.recipient == "ada@example.net"
    assert verdict.refs.tokens == (TOKEN,) and verdict.refs.message_ids == (MESSAGE_ID,)


@pytest.mark.parametrize(("soft", "hard"), [(False, True), (True, False)])
def test_exims_bounce_is_graded_by_its_reply_not_by_the_returned_digest(
    soft: bool, hard: bool
) -> None:
    """The returned digest holds "4.2.2" and "451" in its text: only the prose before the
    copy grades the bounce."""
    raw = mail.exim_bounce(to=BOUNCES, recipient="ada@example.net", returned=ORIGINAL, soft=soft)
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Bounce) and verdict.hard is hard
    assert verdict.recipient == "ada@example.net"  # X-Failed-Recipients
    assert verdict.refs.tokens == (TOKEN,)


def test_a_mailto_unsubscribe_carries_its_token_in_the_address_or_the_subject() -> None:
    token = unsubscribe_token(SECRET, 7)
    by_address = mail.unsubscribe_request(
        to=verp_address(BOUNCES, token), sender="someone@example.net"
    )
    by_subject = mail.unsubscribe_request(
        to=BOUNCES, subject=f"Unsubscribe {token}", sender="someone@example.net"
    )
    for raw in (by_address, by_subject):
        verdict = classify(raw, BOUNCES)
        assert verdict == Unsubscribe(verdict.refs)  # type: ignore[union-attr]
        assert isinstance(verdict, Unsubscribe) and verdict.refs.tokens == (token,)


def test_an_unsubscribe_without_a_token_is_left_alone_whatever_its_from() -> None:
    raw = mail.unsubscribe_request(to=BOUNCES, sender="ada@example.net")
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Unmatched) and "without a token" in verdict.reason


def test_other_mail_is_unmatched() -> None:
    assert isinstance(classify(mail.plain_mail(to=BOUNCES), BOUNCES), Unmatched)


def test_the_same_notification_twice_has_one_key_and_another_has_another() -> None:
    one = mail.dsn(to=ENVELOPE, returned=ORIGINAL)
    assert message_key(one) == message_key(one.replace(b"Date: Mon", b"Date: Tue"))
    assert message_key(one) != message_key(mail.dsn(to=ENVELOPE, message_id="<other@x>"))
    headless = b"no headers at all"
    assert message_key(headless) != message_key(b"other bytes")


# -- properties ---------------------------------------------------------------------------

addresses = st.from_regex(r"[a-z][a-z0-9.]{0,10}@[a-z]{1,8}\.(org|net|com)", fullmatch=True)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_any_bytes_get_a_verdict(raw: bytes) -> None:
    classify(raw, BOUNCES)
    message_key(raw)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=600).map(lambda t: t.encode("utf-8", "surrogatepass")), st.booleans())
def test_any_text_inside_a_report_gets_a_verdict(body: bytes, feedback: bool) -> None:
    frame = mail.arf(mail_from=ENVELOPE) if feedback else mail.dsn(to=ENVELOPE)
    head, sep, _ = frame.partition(b"\r\n\r\n")
    classify(head + sep + body, BOUNCES)
    classify(frame.replace(b"Action: failed", body[:100]), BOUNCES)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    delivery_ids,
    addresses,
    st.sampled_from(["failed", "delayed"]),
    st.from_regex(r"[45]\.[0-9]\.[0-9]{1,3}", fullmatch=True),
    st.sampled_from([BOUNCES, "plain@example.org"]),
)
def test_a_dsn_is_graded_by_its_action_and_status_and_names_its_delivery(
    delivery_id: str, recipient: str, action: str, status: str, sent_to: str
) -> None:
    envelope = verp_address(BOUNCES, delivery_token(SECRET, delivery_id))
    returned = mail.original(envelope=envelope, to=recipient, message_id=MESSAGE_ID)
    to = envelope if sent_to == BOUNCES else sent_to
    verdict = classify(
        mail.dsn(to=to, recipient=recipient, action=action, status=status, returned=returned),
        BOUNCES,
    )
    assert isinstance(verdict, Bounce)
    assert verdict.hard is (action == "failed" and status.startswith("5"))
    assert verdict.recipient == recipient and verdict.status == status
    (token,) = verdict.refs.tokens
    ref = read_token(SECRET, token)
    assert ref is not None and ref.delivery_id == delivery_id


@settings(max_examples=100)
@given(
    st.integers(1, 10**9), st.sampled_from(["unsubscribe", "UNSUBSCRIBE", "Please unsubscribe me"])
)
def test_an_unsubscribe_names_the_subscriber_of_its_token(subscriber_id: int, subject: str) -> None:
    token = unsubscribe_token(SECRET, subscriber_id)
    raw = mail.unsubscribe_request(
        to=verp_address(BOUNCES, token), subject=subject, sender="x@y.org"
    )
    verdict = classify(raw, BOUNCES)
    assert isinstance(verdict, Unsubscribe)
    refs = [read_token(SECRET, t) for t in verdict.refs.tokens]
    assert [r.subscriber_id for r in refs if r] == [subscriber_id]


def test_the_config_check_of_the_bounce_address_leaves_room_for_a_delivery_token() -> None:
    from digest.compose.verp import MAX_BOUNCE_LOCAL
    from digest.config.mailbox import MAX_BOUNCE_LOCAL as CHECKED

    token = delivery_token(SECRET, DELIVERY)
    assert token is not None and CHECKED == MAX_BOUNCE_LOCAL == 64 - len("+" + token)
