"""Driving ``digest serve`` and Debian's chromium from tests: the server as a subprocess on a
free port (:class:`Serve`, :func:`write_config`), the ``serve`` and ``chromium`` fixtures (a
test without ``/usr/bin/chromium`` is skipped), and where screenshots go
(:func:`artifacts_dir`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.support.smtpd import SmtpServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("DIGEST_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def digest_command() -> list[str]:
    """The installed ``digest`` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "digest"
    return [str(script)] if script.exists() else [sys.executable, "-m", "digest"]


class Serve:
    """``digest -v --config CONFIG serve`` as a subprocess, its output in a log file."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        env = {**os.environ, "DIGEST_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        try:
            self.proc = subprocess.Popen(
                [*digest_command(), "-v", "--config", str(config), "serve", *self.listen(port)],
                cwd=config.parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            self._out.close()
            raise

    @staticmethod
    def listen(port: int) -> list[str]:
        return ["--host", "127.0.0.1", "--port", str(port)]

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def why(self, what: str) -> str:
        """An assertion message: ``what``, and the end of the server's output."""
        return (
            f"{what}\n--- digest serve output (last 4000 characters) ---\n{self.output()[-4000:]}"
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Until /healthz says the scheduler runs; fails if the process ends first."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(self.why(f"digest serve exited with {self.proc.returncode}"))
            try:
                response = httpx.get(f"{self.base}/healthz", timeout=2)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                last = repr(exc)
            time.sleep(0.1)
        pytest.fail(self.why(f"digest serve not ready after {timeout}s (last: {last})"))

    def cli(self, *args: str) -> str:
        """Another ``digest`` command on the same configuration (and database)."""
        done = subprocess.run(
            [*digest_command(), "--config", str(self.config), *args],
            env={**os.environ, "DIGEST_SECRET": SECRET},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, self.why(f"digest {' '.join(args)}: {done.stderr}")
        return done.stdout

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, wait; SIGKILL if it does not end in ``timeout`` s. The exit status."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
                    return -9  # as if killed: not the clean exit asked for
            return self.proc.returncode
        finally:
            self._out.close()


def write_config(folder: Path, port: int, smtp: SmtpServer) -> Path:
    config = folder / "digest.toml"
    config.write_text(
        f"""\
database = "sqlite:///digest.db"
timezone = "UTC"
base_url = "http://127.0.0.1:{port}"

[source]
kind = "file"
path = "listings"

[mail]
from = "Paper Digest <digest@example.org>"

[smtp]
host = "{smtp.host}"
port = {smtp.port}
timeout = 10

[schedule]
check_every = 2

[web]
shutdown_timeout = 10

[feeds]
dir = "public"
""",
        "utf-8",
    )
    return config


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path, int], Serve]]:
    """Starts ``digest serve``; whatever happens, stopped (then killed) after the test."""
    started: list[Serve] = []

    def start(config: Path, port: int) -> Serve:
        server = Serve(config, port, tmp_path / "serve.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed: apt-get install chromium; .ci/run installs it"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
