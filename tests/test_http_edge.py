"""HttpEdge's politeness against a real local server: the per-host gate across processes and
tasks, the User-Agent with the operator's contact, Retry-After on 429 and 503, conditional
GETs."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from digest import __version__
from digest.errors import SourceError
from digest.sources.http import HttpEdge, NotModified, default_user_agent
from digest.sources.huggingface_http import HttpSource
from tests.support.listing_server import ListingServer
from tests.support.listings import item
from tests.support.polite_server import PoliteServer

INTERVAL = 0.5
SLACK = 0.005  # float noise: the server notes an end before the client can see it


@pytest.fixture
def server() -> Iterator[PoliteServer]:
    with PoliteServer(delay=0.05) as running:
        yield running


async def fetch_all(edge: HttpEdge, urls: list[str]) -> list[bytes]:
    async with edge.client() as client:
        return [(await edge.get(client, url)).body for url in urls]


# -- the gate ----------------------------------------------------------------------------------

CLIENT = textwrap.dedent(
    """
    import asyncio, sys, time
    from digest.sources.http import HttpEdge

    async def main(url: str, gate_dir: str, count: int) -> None:
        edge = HttpEdge(min_interval=float(sys.argv[4]), gate_dir=gate_dir, max_retries=0)
        async with edge.client() as client:
            print("ready", flush=True)
            sys.stdin.readline()  # the go: both processes ask at once
            print(time.time(), flush=True)
            urls = [f"{url}?from={sys.argv[5]}&n={n}" for n in range(count)]
            pages = await asyncio.gather(*(edge.get(client, u) for u in urls))
            assert all(page.body for page in pages), "an empty body"

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_two_processes_take_turns_at_one_host(server: PoliteServer, tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    command = [sys.executable, "-c", CLIENT, server.url, str(gates), "2", str(INTERVAL)]
    processes = [
        subprocess.Popen(
            [*command, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("first", "second")
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=60) for process in processes]
    for process, (_, errors) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, errors
    asked = [float(out) for out, _ in outputs]
    assert abs(asked[0] - asked[1]) < INTERVAL  # they did contend for the host
    assert len(server.seen) == 4
    assert {s.path.split("&")[0] for s in server.seen} == {
        "/feed.xml?from=first",
        "/feed.xml?from=second",
    }
    assert min(server.gaps()) >= INTERVAL - SLACK, server.gaps()
    assert server.max_connections == 1
    assert server.max_in_flight == 1
    assert all(s.headers.get("Connection") == "close" for s in server.seen)
    assert [p.name for p in gates.iterdir()] == [
        "127.0.0.1_" + server.url.split(":")[2].split("/")[0] + ".lock"
    ]


async def test_concurrent_tasks_of_one_process_take_turns(
    server: PoliteServer, tmp_path: Path
) -> None:
    # Two sources of one run (two edges) and several pages of one source at once.
    first = HttpEdge(min_interval=0.15, gate_dir=tmp_path)
    second = HttpEdge(min_interval=0.15, gate_dir=tmp_path)
    async with first.client() as one, second.client() as two:
        pages = await asyncio.gather(
            *(first.get(one, f"{server.url}?a={n}") for n in range(3)),
            *(second.get(two, f"{server.url}?b={n}") for n in range(2)),
        )
    assert [p.body for p in pages] == [server.body] * 5
    assert len(server.seen) == 5
    assert min(server.gaps()) >= 0.15 - SLACK, server.gaps()
    assert server.max_connections == 1


async def test_an_unusable_gate_directory_falls_back_to_this_process(
    server: PoliteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    edge = HttpEdge(min_interval=0.2, gate_dir=blocker / "gates")
    with caplog.at_level(logging.WARNING, "digest.sources.gate"):
        async with edge.client() as client:
            await asyncio.gather(*(edge.get(client, f"{server.url}?n={n}") for n in range(3)))
    assert len(server.seen) == 3
    assert min(server.gaps()) >= 0.2 - SLACK, server.gaps()
    assert server.max_in_flight == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(blocker / "gates") in warnings[0] and "within this process only" in warnings[0]


async def test_a_host_without_an_interval_is_not_gated(
    server: PoliteServer, tmp_path: Path
) -> None:
    edge = HttpEdge(gate_dir=tmp_path)  # 127.0.0.1: no interval of its own
    assert edge.gate(server.url) is None
    async with edge.client() as client:
        await asyncio.gather(*(edge.get(client, f"{server.url}?n={n}") for n in range(3)))
    assert server.max_in_flight > 1  # side by side
    assert list(tmp_path.iterdir()) == []
    assert all(s.headers.get("Connection") != "close" for s in server.seen)


def test_arxiv_hosts_share_one_gate_of_at_least_three_seconds(tmp_path: Path) -> None:
    edge = HttpEdge(gate_dir=tmp_path)
    api = edge.gate("https://export.arxiv.org/api/query?search_query=cat:cs.LG")
    rss = edge.gate("https://rss.arxiv.org/rss/cs.LG+stat.ML")
    assert api is not None and api is rss
    assert (api.key, api.min_interval, api.file) == ("arxiv.org", 3.0, tmp_path / "arxiv.org.lock")
    slower = HttpEdge(min_interval=5.0, gate_dir=tmp_path).gate("https://arxiv.org/abs/2512.00001")
    faster = HttpEdge(min_interval=1.0, gate_dir=tmp_path).gate("https://arxiv.org/a/")
    assert slower is not None and slower.min_interval == 5.0
    assert faster is not None and faster.min_interval == 3.0
    with pytest.raises(ValueError, match="min_interval"):
        HttpEdge(min_interval=-1.0)


# -- User-Agent --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "expected"),
    [
        (None, f"paper-digest/{__version__}"),
        ("", f"paper-digest/{__version__}"),
        ("ops@example.org", f"paper-digest/{__version__} (mailto:ops@example.org)"),
        (
            "Équipe Digest <digest@lab.example.org>",
            f"paper-digest/{__version__} (mailto:digest@lab.example.org)",
        ),
        (
            "https://lab.example.org/digest",
            f"paper-digest/{__version__} (+https://lab.example.org/digest)",
        ),
        (
            "ops@example.org\r\nX-Injected: yes",
            f"paper-digest/{__version__} (mailto:ops@example.org X-Injected: yes)",
        ),
        ("(ops@example.org)", f"paper-digest/{__version__} (mailto:ops@example.org)"),
    ],
)
def test_the_default_user_agent_names_the_operator(contact: str | None, expected: str) -> None:
    agent = default_user_agent(contact)
    assert agent == expected
    assert agent.isascii() and agent.isprintable()


async def test_the_server_sees_the_operators_contact(server: PoliteServer) -> None:
    edge = HttpEdge(user_agent=default_user_agent("Digest Ops <ops@example.org>"))
    await fetch_all(edge, [server.url])
    custom = HttpEdge(user_agent="lab-digest/2 (mailto:lab@example.org)")
    await fetch_all(custom, [server.url])
    assert [s.headers["User-Agent"] for s in server.seen] == [
        f"paper-digest/{__version__} (mailto:ops@example.org)",
        "lab-digest/2 (mailto:lab@example.org)",
    ]
    with pytest.raises(ValueError, match="printable ASCII"):
        HttpEdge(user_agent="digest\r\nX-Injected: yes")


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
async def test_retry_after_is_waited_for_then_the_fetch_succeeds(
    server: PoliteServer, status: int
) -> None:
    server.answer(status, headers={"Retry-After": "1"})
    edge = HttpEdge(max_retries=2, backoff=0.01)
    assert await fetch_all(edge, [server.url]) == [server.body]
    assert [s.status for s in server.seen] == [status, 200]
    assert server.seen[1].started - server.seen[0].ended >= 1.0 - SLACK


async def test_retry_after_holds_off_every_process_at_the_gate(
    server: PoliteServer, tmp_path: Path
) -> None:
    server.answer(503, headers={"Retry-After": "1"})
    waiting = HttpEdge(min_interval=0.1, gate_dir=tmp_path, max_retries=1)
    other = HttpEdge(min_interval=0.1, gate_dir=tmp_path, max_retries=0)

    async def later() -> list[bytes]:
        await asyncio.sleep(0.3)  # while the first waits out its Retry-After
        return await fetch_all(other, [f"{server.url}?other"])

    results = await asyncio.gather(fetch_all(waiting, [server.url]), later())
    assert list(results) == [[server.body], [server.body]]
    assert server.seen[0].status == 503
    assert all(s.started - server.seen[0].ended >= 1.0 - SLACK for s in server.seen[1:])


async def test_a_503_past_the_retries_is_a_source_error(server: PoliteServer) -> None:
    for _ in range(2):
        server.answer(503, headers={"Retry-After": "0"})
    with pytest.raises(SourceError, match=r"HTTP 503 .*gave up after 2 attempts"):
        await fetch_all(HttpEdge(max_retries=1), [server.url])


# -- conditional GET ---------------------------------------------------------------------------


async def test_validators_are_stored_sent_and_a_304_is_not_modified(
    server: PoliteServer,
) -> None:
    validators: dict[str, tuple[str | None, str | None]] = {}
    edge = HttpEdge(validators=validators)
    assert await fetch_all(edge, [server.url]) == [server.body]
    assert validators == {server.url: ('"listing-1"', "Mon, 07 Dec 2026 08:00:00 GMT")}
    with pytest.raises(NotModified) as caught:
        await fetch_all(edge, [server.url])
    assert caught.value.url == server.url
    assert not isinstance(caught.value, SourceError)
    first, second = server.seen
    assert "If-None-Match" not in first.headers and "If-Modified-Since" not in first.headers
    assert second.headers["If-None-Match"] == '"listing-1"'
    assert second.headers["If-Modified-Since"] == "Mon, 07 Dec 2026 08:00:00 GMT"
    assert second.status == 304
    # The listing changed: a 200 with the new validators replaces the old ones.
    server.etag, server.body = '"listing-2"', b"<rss><channel><title>new</title></channel></rss>"
    assert await fetch_all(edge, [server.url]) == [server.body]
    assert validators[server.url] == ('"listing-2"', "Mon, 07 Dec 2026 08:00:00 GMT")


async def test_a_server_without_validators_makes_the_edge_forget_them(
    server: PoliteServer,
) -> None:
    server.etag, server.last_modified = None, None
    other = "http://127.0.0.1:9/untouched.xml"
    validators = {server.url: ('"old"', None), other: (None, "Sun, 06 Dec 2026 08:00:00 GMT")}
    edge = HttpEdge(validators=validators)
    assert await fetch_all(edge, [server.url]) == [server.body]
    assert server.seen[0].headers["If-None-Match"] == '"old"'
    assert "If-Modified-Since" not in server.seen[0].headers
    assert validators == {other: (None, "Sun, 06 Dec 2026 08:00:00 GMT")}


async def test_a_304_to_an_unconditional_get_is_a_source_error(server: PoliteServer) -> None:
    server.answer(304)
    with pytest.raises(SourceError, match="HTTP 304"):
        await fetch_all(HttpEdge(), [server.url])
    server.answer(304)
    with pytest.raises(SourceError, match="HTTP 304"):
        await fetch_all(HttpEdge(validators={}), [server.url])


# -- the Hugging Face source on the same edge --------------------------------------------------


async def test_the_huggingface_source_fetches_through_the_gate(tmp_path: Path) -> None:
    papers = [item(f"2512.{n:05d}", f"Invented paper {n} — ünïcode") for n in range(250)]
    with ListingServer({"2026-12-04": papers}, today=date(2026, 12, 7)) as listings:
        hf = HttpSource(
            listings.url,
            user_agent=default_user_agent("ops@example.org"),
            min_interval=0.2,
            gate_dir=tmp_path,
        )
        started = time.monotonic()
        listing = await hf.fetch(date(2026, 12, 4))
        elapsed = time.monotonic() - started
        port = listings.url.split(":")[2].split("/")[0]
    assert [p.arxiv_id for p in listing.papers] == [f"2512.{n:05d}" for n in range(250)]
    assert len(listings.requests) == 3
    assert elapsed >= 2 * 0.2  # three pages, an interval between each
    assert listings.user_agents == [f"paper-digest/{__version__} (mailto:ops@example.org)"] * 3
    assert [p.name for p in tmp_path.iterdir()] == [f"127.0.0.1_{port}.lock"]
