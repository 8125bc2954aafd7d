"""The per-host gate on its own: which host goes through which gate, the lock file across
processes (a holder killed mid-request frees it), the interval after the last request ended,
a server's hold-off, the default directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from digest.sources.gate import (
    HostGate,
    default_gate_dir,
    default_interval,
    effective_interval,
    gate_key,
)


@pytest.mark.parametrize(
    ("url", "key", "interval"),
    [
        ("https://export.arxiv.org/api/query?search_query=cat:cs.LG", "arxiv.org", 3.0),
        ("https://rss.arxiv.org/rss/cs.LG+stat.ML", "arxiv.org", 3.0),
        ("http://ARXIV.org./abs/2512.01234v2", "arxiv.org", 3.0),
        ("https://arxiv.org:8443/list", "arxiv.org", 3.0),
        ("https://notarxiv.org/feed", "notarxiv.org", 0.0),
        ("https://arxiv.org.example.net/feed", "arxiv.org.example.net", 0.0),
        ("https://huggingface.co/api/daily_papers?date=2026-12-07", "huggingface.co", 0.0),
        ("http://127.0.0.1:8123/feed.xml", "127.0.0.1:8123", 0.0),
        ("http://[::1]:8123/feed.xml", "::1:8123", 0.0),
        ("https://www.biorxiv.org/rss/neuroscience.xml", "www.biorxiv.org", 0.0),
    ],
)
def test_each_host_has_its_gate_and_interval(url: str, key: str, interval: float) -> None:
    assert gate_key(url) == key
    assert default_interval(url) == interval


@pytest.mark.parametrize(
    ("url", "configured", "interval"),
    [
        ("https://export.arxiv.org/api/query", None, 3.0),
        ("https://export.arxiv.org/api/query", 1.0, 3.0),  # arXiv's rule is a floor
        ("https://export.arxiv.org/api/query", 10.0, 10.0),
        ("https://example.org/feed.rss", None, 0.0),
        ("https://example.org/feed.rss", 2.5, 2.5),
    ],
)
def test_a_source_may_raise_an_interval_but_not_below_arxivs(
    url: str, configured: float | None, interval: float
) -> None:
    assert effective_interval(url, configured) == interval


def test_the_default_directory_is_private_to_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert default_gate_dir() == Path("/run/user/1234/paper-digest")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_gate_dir().name == f"paper-digest-{os.getuid()}"


async def test_the_next_request_starts_an_interval_after_the_last_ended(tmp_path: Path) -> None:
    gate = HostGate("example.org", 0.3, tmp_path)
    marks: list[tuple[str, float]] = []

    async def request(name: str, duration: float) -> None:
        async with gate.slot():
            marks.append((name + " start", time.time()))
            await asyncio.sleep(duration)
            marks.append((name + " end", time.time()))

    await asyncio.gather(request("a", 0.2), request("b", 0.0), request("c", 0.0))
    names = [name for name, _ in marks]
    assert [n.split()[1] for n in names] == ["start", "end"] * 3  # never two at once
    times = [when for _, when in marks]
    assert times[2] - times[1] >= 0.3 - 0.005 and times[4] - times[3] >= 0.3 - 0.005
    ready, written = map(float, (tmp_path / "example.org.lock").read_text().split())
    assert ready == pytest.approx(times[5] + 0.3, abs=0.05)
    assert written == pytest.approx(times[5], abs=0.05)
    assert (tmp_path / "example.org.lock").stat().st_mode & 0o777 == 0o600


async def test_a_hold_off_delays_the_next_request(tmp_path: Path) -> None:
    gate = HostGate("example.org", 0.05, tmp_path)
    async with gate.slot() as slot:
        slot.hold_off(0.6)
        ended = time.time()
    async with HostGate("example.org", 0.05, tmp_path).slot():
        assert time.time() - ended >= 0.6 - 0.005


async def test_a_clock_set_back_costs_an_interval_not_the_difference(tmp_path: Path) -> None:
    # The last request ended "an hour from now": the clock was set back an hour since.
    later = time.time() + 3600
    (tmp_path / "example.org.lock").write_text(f"{later + 0.3:.6f} {later:.6f}\n")
    started = time.monotonic()
    async with HostGate("example.org", 0.3, tmp_path).slot():
        waited = time.monotonic() - started
    assert 0.3 - 0.005 <= waited < 600  # an interval, not the hour the clock went back


async def test_a_garbled_gate_file_is_no_wait(tmp_path: Path) -> None:
    (tmp_path / "example.org.lock").write_bytes(b"\xff\xfe not a time")
    started = time.monotonic()
    async with HostGate("example.org", 5.0, tmp_path).slot():
        assert time.monotonic() - started < 4.5  # no interval waited (5 s)
    assert float((tmp_path / "example.org.lock").read_text().split()[0]) > time.time() + 4


HOLDER = textwrap.dedent(
    """
    import asyncio, sys, time
    from digest.sources.gate import HostGate

    async def main() -> None:
        async with HostGate("example.org", 0.2, sys.argv[1]).slot():
            print("held", flush=True)
            time.sleep(120)

    asyncio.run(main())
    """
)


async def test_a_process_killed_mid_request_frees_the_gate(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.to_thread(holder.stdout.readline)
        assert line == "held\n"
        waiter = asyncio.create_task(_enter(HostGate("example.org", 0.2, tmp_path)))
        await asyncio.sleep(0.5)
        assert not waiter.done()  # another process holds the lock
        holder.send_signal(signal.SIGKILL)
        killed = time.time()
        entered = await asyncio.wait_for(waiter, 5)
        # The holder wrote its start plus the interval: no wait past it, no wait forever.
        assert entered - killed < 0.5
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


async def _enter(gate: HostGate) -> float:
    async with gate.slot():
        return time.time()


async def test_the_event_loop_runs_while_a_gate_waits(tmp_path: Path) -> None:
    gate = HostGate("example.org", 0.4, tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        for _ in range(2):
            async with gate.slot():
                pass
    finally:
        running.cancel()
    assert ticks >= 10  # ~0.4 s of waiting at 20 ms a tick, not one blocked stretch


def test_a_negative_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_interval"):
        HostGate("example.org", -0.1, tmp_path)
