"""`digest serve` as a real process on a real port: it refuses to start without a secret,
reports health, and on SIGTERM finishes the SMTP transactions in flight, records them and
exits 0 — leaving the rest pending for the next pass, which sends each once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from digest.config import load
from digest.models import Subscriber
from digest.store import Store
from tests.support.listings import item, write_days, write_site_config
from tests.support.smtpd import SmtpServer

SECRET = "serve-test-secret-0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, server: SmtpServer, port: int, *, concurrency: int = 2) -> Path:
    today = datetime.now(UTC).date()
    write_days(
        folder / "listings",
        {today.isoformat(): [item(f"2611.{i:05d}", f"Paper {i}", "diffusion") for i in range(5)]},
    )
    return write_site_config(
        folder,
        server,
        top=f'base_url = "http://127.0.0.1:{port}"',
        smtp=f"concurrency = {concurrency}",
        more="[schedule]\ncheck_every = 1\n[web]\nshutdown_timeout = 20",
    )


class Serve:
    """A running `digest serve`, its output kept in a file."""

    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.log = config.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        environ = {**os.environ, "DIGEST_SECRET": SECRET, **(env or {})}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "--config", str(config), "-v", "serve",
                 "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=environ,
            )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def wait_healthy(self, timeout: float = 20) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("digest serve did not answer:\n" + self.output())

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("no exit after SIGTERM:\n" + self.output()) from None
        return code, time.monotonic() - started


@pytest.fixture
def serve() -> Iterator[Callable[..., Serve]]:
    running: list[Serve] = []

    def start(config: Path, port: int | None = None, **kwargs: dict[str, str]) -> Serve:
        s = Serve(config, port or free_port(), **kwargs)
        running.append(s)
        return s

    yield start
    for s in running:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("", "utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(tmp_path / "config.toml"), "serve"],
        capture_output=True, text=True, env=env, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "DIGEST_SECRET is not set" in done.stderr
    assert "secrets.token_urlsafe" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_is_healthy_and_stops_cleanly_on_sigterm(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], serve: Callable[..., Serve]
) -> None:
    server = smtp_server()
    port = free_port()
    config = write_config(tmp_path, server, port)
    proc = serve(config, port)
    health = proc.wait_healthy()
    assert health.status_code == 200, health.text
    assert health.json()["scheduler"] == "running"
    home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert home.status_code == 200 and "Subscribe" in home.text
    code, took = proc.terminate()
    assert code == 0, proc.output()
    assert took < 10
    assert "Traceback" not in proc.output()


@pytest.mark.slow  # a real service sending through a stalling server, then SIGTERM: ~8 s
def test_sigterm_mid_send_finishes_what_is_in_flight_and_loses_nothing(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], serve: Callable[..., Serve]
) -> None:
    server = smtp_server(stall_on="DATA", stall=0.4)
    port = free_port()
    config_path = write_config(tmp_path, server, port, concurrency=2)
    config = load(config_path)
    emails = [f"reader{i:02d}@example.org" for i in range(30)]
    with Store(config.database) as store:
        ids = [store.members.add_subscriber(Subscriber(email=e)).id for e in emails]
        due = datetime.now(UTC) - timedelta(minutes=5)  # missed a send: one catch-up each
        store.members.set_next_sends(
            [(i, due, None) for i in ids if i is not None], only_if_due=None
        )

    proc = serve(config_path, port)
    deadline = time.monotonic() + 30
    while len(server.messages) < 3:
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.05)
    code, took = proc.terminate()
    assert code == 0, proc.output()
    assert took < 20 + 5, "exceeded the shutdown bound"
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert 3 <= len(received) < len(emails), "SIGTERM came too late to test anything"
    with Store(config.database) as store:
        counts = store.outbox.delivery_counts()
    # Every message the server accepted was recorded as sent; the rest wait, none lost.
    assert counts.get("sent", 0) == len(server.messages), (counts, proc.output())
    assert counts.get("sending", 0) == 0
    assert counts.get("sent", 0) + counts.get("pending", 0) == len(emails), counts

    server.set_faults()  # a healthy server for the restart
    again = serve(config_path, port)
    deadline = time.monotonic() + 30
    while len({m.rcpt_tos[0] for m in server.messages}) < len(emails):
        assert time.monotonic() < deadline, again.output()
        time.sleep(0.1)
    time.sleep(2.5)  # two more passes: nothing more goes out
    code, _ = again.terminate()
    assert code == 0
    received = Counter(m.rcpt_tos[0] for m in server.messages)
    assert set(received) == set(emails)
    assert max(received.values()) == 1, "a digest was sent twice"
