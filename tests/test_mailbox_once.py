"""Exactly once, as a property: whatever mix of hard and soft bounces, complaints, mailto
unsubscribes, duplicates and strangers' mail a maildir holds, one pass acts on each message
once (a copy of one it acted on is "already seen"), a second pass acts on nothing, and a
digest fails at most once however many reports name it. Real SQLite files."""

from __future__ import annotations

import mailbox as stdlib_mailbox
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.compose import delivery_token, unsubscribe_token, verp_address
from digest.config import parse
from digest.models import Subscriber
from digest.run.mailbox import read_mailbox
from digest.store import PlannedDelivery, Store, new_delivery_id
from tests.support import bounces as mail

SECRET = b"s" * 43
BOUNCES = "bounces@example.org"
NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)
PEOPLE = 3
DIGESTS = 2  # per subscriber

#: One message: (what, subscriber 0-2, digest 0-1, report number 0-1 (two reports of one
#: failure have different Message-IDs), copies 1-2 (the same message delivered again)).
events = st.lists(
    st.tuples(
        st.sampled_from(["hard", "soft", "complaint", "unsubscribe", "stranger"]),
        st.integers(0, PEOPLE - 1),
        st.integers(0, DIGESTS - 1),
        st.integers(0, 1),
        st.integers(1, 2),
    ),
    max_size=12,
)


def message(what: str, sub_id: int, delivery: str, report: int) -> bytes:
    envelope = verp_address(BOUNCES, delivery_token(SECRET, delivery))
    if what in ("hard", "soft"):
        return mail.dsn(
            to=envelope,
            status="5.1.1" if what == "hard" else "4.2.2",
            message_id=f"<report-{delivery}-{what}-{report}@mx.example.net>",
        )
    if what == "complaint":
        original = mail.original(envelope=envelope, to="x@example.net", message_id="<m@x>")
        return mail.arf(mail_from=envelope, returned=original).replace(
            b"<arf-", f"<arf-{delivery}-{report}-".encode()
        )
    if what == "unsubscribe":
        to = verp_address(BOUNCES, unsubscribe_token(SECRET, sub_id))
        return mail.unsubscribe_request(
            to=to, sender="anyone@example.net", subject=f"unsubscribe {report}"
        )
    return mail.plain_mail(to=BOUNCES, subject=f"question {sub_id} {report}")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_each_message_is_acted_on_once_and_a_second_pass_acts_on_none(
    mix: list[tuple[str, int, int, int, int]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        box = stdlib_mailbox.Maildir(base / "Maildir", create=True)
        config = parse(
            {
                "database": f"sqlite:///{base / 'digest.db'}",
                "mail": {"bounce_address": BOUNCES, "max_hard_bounces": 3},
                "mailbox": {"kind": "maildir", "path": str(base / "Maildir")},
            },
            base=base,
        )
        with Store(config.database) as store:
            ids, digests = [], []
            for n in range(PEOPLE):
                sub = store.members.add_subscriber(Subscriber(email=f"p{n}@example.org"))
                assert sub.id is not None
                ids.append(sub.id)
                plans = [
                    PlannedDelivery(sub.id, date(2026, 12, d + 1), (f"k{n}.{d}",), 1,
                                    id=new_delivery_id(), message_id=f"<d{n}.{d}@example.org>")
                    for d in range(DIGESTS)
                ]  # fmt: skip
                for d, plan in enumerate(plans):  # a day apart, each accepted by the server
                    store.outbox.record_pending([plan], NOW - timedelta(days=DIGESTS - d))
                    store.outbox.mark_sent(plan.id, NOW - timedelta(days=DIGESTS - d))
                digests.append([p.id for p in plans])

            added: list[bytes] = []
            for what, person, d, report, times in mix:
                added += [message(what, ids[person], digests[person][d], report)] * times
            for raw in added:
                box.add(raw)
            ours = [raw for raw in added if b"question" not in raw]
            strangers = len(added) - len(ours)

            first = read_mailbox(config, store, SECRET, now=NOW)
            acted = first.hard + first.soft + first.complaints + first.unsubscribes
            assert acted == len(set(ours))
            assert first.seen == len(ours) - len(set(ours)) and first.unmatched == strangers

            second = read_mailbox(config, store, SECRET, now=NOW)
            assert (second.hard, second.soft, second.complaints) == (0, 0, 0)
            assert (second.unsubscribes, second.seen, second.unmatched) == (0, 0, strangers)

            hard = {digests[p][d] for what, p, d, _, _ in mix if what == "hard"}
            counts = store.outbox.delivery_counts()
            assert counts.get("failed", 0) == len(hard)
            for n, sub_id in enumerate(ids):
                now = store.members.subscriber_by_id(sub_id)
                assert now is not None
                failed = {x for x in digests[n] if x in hard}
                assert now.hard_bounces == len(failed)  # once per digest, whatever the reports
                left = any(w in ("complaint", "unsubscribe") for w, p, *_ in mix if p == n)
                assert (now.status == "unsubscribed") is left
