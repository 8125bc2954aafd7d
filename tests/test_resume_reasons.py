"""A digest resumed after a crash shows its similarity picks' reasons (issue 17).

The real ``digest run`` of day two is SIGKILLed (when its first SMTP connection is accepted:
every digest recorded, none sent; or right after the server recorded a message, before its
250: that message is surely sent again), then started again until it ends. Each reader's
digest, as the server finally got it, lists the same papers with the same reasons as on a
twin site whose run was not killed: ``Like "<liked title>" (NN% similar)`` for the picks,
the matched words for keyword matches. A message sent twice is the same bytes both times.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import DAY, KillingServer, Tally, World
from tests.support.listings import write_days
from tests.support.mime import body_of
from tests.support.site import digest
from tests.test_ranking_run import DAYS, entries

#: One worker runs the fault tests, one after another (see pyproject.toml).
pytestmark = pytest.mark.xdist_group("faults")

#: tests/test_ranking_run's two days, the second on the harness's day.
FIRST_DAY = "2026-11-15"
LISTINGS = {FIRST_DAY: DAYS["2026-11-16"], DAY: DAYS["2026-11-17"]}
#: (email, keywords, liked ids): likers without keywords first (the first messages sent),
#: then likers with keywords, then readers without likes.
READERS = [
    *((f"picks{i}@example.org", (), ("2511.10002",)) for i in range(5)),
    *((f"both{i}@example.org", ("retrieval",), ("2511.10001",)) for i in range(5)),
    *((f"plain{i}@example.org", ("protein",), ()) for i in range(3)),
]
REASON = re.compile(r'^Like ".+" \(\d+% similar\)$')


def _cli(tmp: Path, *args: str) -> None:
    done = digest(tmp, *args)
    assert done.exit_code == 0, done.output


def _world(tmp: Path, server: KillingServer) -> World:
    """A site whose first day is stored (no subscriber yet), then the readers and likes."""
    tmp.mkdir(parents=True, exist_ok=True)
    listings = write_days(tmp / "listings", LISTINGS)
    world = World(tmp, server, len(READERS), 1)
    world.config.write_text(
        f"""database = "sqlite:///{world.db}"
base_url = "https://digest.example.org"
[source]
kind = "file"
path = "{listings}"
[mail]
from = "Paper Digest <digest@example.org>"
[feeds]
dir = "{tmp / "public"}"
[smtp]
host = "{server.host}"
port = {server.port}
security = "none"
concurrency = 1
max_attempts = 2
timeout = 10
""",
        "utf-8",
    )
    _cli(tmp, "run", "--date", FIRST_DAY)
    for email, keywords, liked in READERS:
        _cli(tmp, "subscribers", "add", email, *(a for k in keywords for a in ("--keyword", k)))
        if liked:
            _cli(tmp, "subscribers", "like", email, *liked)
    return world


def _digests(server: KillingServer) -> dict[str, list[tuple[str, str]]]:
    """Each reader's digest of day two as the server last got it: (title, reason) each."""
    return {m.rcpt_tos[0]: entries(body_of(m.message, "plain")) for m in server.messages}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str]]]:
    """The digests of a twin site whose day-two run was not killed."""
    server = KillingServer().start()
    try:
        world = _world(tmp_path_factory.mktemp("unbroken"), server)
        done = world.run()
        assert done.returncode == 0, done.stderr[-3000:]
        return _digests(server)
    finally:
        server.stop()


@pytest.fixture
def server() -> Iterator[KillingServer]:
    killing = KillingServer(stall_on="DATA", stall=0.002).start()
    try:
        yield killing
    finally:
        killing.stop()


@pytest.mark.slow  # a site, a killed run and its restart (and once, a twin site): ~10-20 s
@pytest.mark.parametrize(
    "kill", ["connection 1", "message 2", "message 7"], ids=lambda k: k.replace(" ", "-")
)
def test_a_resumed_digest_shows_the_reasons_of_its_picks(
    tmp_path: Path, server: KillingServer, unbroken: dict[str, list[tuple[str, str]]], kill: str
) -> None:
    expected = unbroken
    picks = [r for r, found in expected.items() if any(REASON.match(w) for _, w in found)]
    assert len(picks) == 10  # the test means something: every liker got picks
    world = _world(tmp_path, server)
    proc = world.start()
    what, number = kill.split()
    if what == "connection":
        server.arm(proc.pid, at_connection=int(number))
    else:
        server.arm(proc.pid, at_message=int(number))
    try:
        done = world.wait(proc)
    finally:
        server.disarm()
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    killed_at = len(server.messages)
    assert killed_at == (0 if what == "connection" else int(number))
    for _ in range(2):
        again = world.run()
        if again.returncode == 0:
            break
    assert again.returncode == 0, again.stderr[-3000:]

    tally = Tally.of(server)
    assert set(tally.ids_per_rcpt) == {email for email, _, _ in READERS}
    assert all(len(ids) == 1 for ids in tally.ids_per_rcpt.values())
    copies: dict[str, set[bytes]] = {}
    for m in server.messages:
        copies.setdefault(str(m.message["Message-ID"]), set()).add(m.data)
    assert all(len(versions) == 1 for versions in copies.values())  # re-sent: same bytes
    if what == "message":
        assert tally.duplicated == 1
    # every digest sent after the kill was resumed: the same papers, the same reasons
    assert _digests(server) == expected
    for m in server.messages[killed_at:]:
        html = body_of(m.message, "html")
        if m.rcpt_tos[0] in picks:
            assert re.search(r"\d+% similar", html)
