"""The real ``digest run`` in a subprocess against a real aiosmtpd server, killed on cue.

``World`` is one tmp folder: a SQLite database holding ``n`` subscribers (no keywords: each
gets one digest of the whole listing), a ``file`` source with a listing of ``PAPERS`` papers,
a config pointing at a :class:`KillingServer`. ``world.start()`` launches the program;
``KillingServer.arm(pid, at_message=k)`` SIGKILLs it from inside the server thread at an
exact moment (the k-th message recorded, before the server's 250 reply: the worst case for
duplicates; or a connection accepted), and :func:`kill_when` does it from the test thread when a
database condition holds (a phase of the run with no SMTP traffic to key on).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest.models import Subscriber
from digest.store import Store
from tests.support.listings import item, write_days
from tests.support.smtpd import SmtpServer

DAY = "2026-11-16"
PAPERS = 40
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
#: ``python -c _LIMITED LIMIT args...``: ``python -m digest args...`` with RLIMIT_FSIZE set.
_LIMITED = (
    "import resource, runpy, sys; limit = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "runpy.run_module('digest', run_name='__main__', alter_sys=True)"
)


class KillingServer(SmtpServer):
    """An :class:`SmtpServer` that SIGKILLs a process (of the pids armed, the first still
    running) when it has received ``at_message`` messages in all (checked right after
    recording one, before replying 250; ``delay`` seconds later if given), or when it
    accepts connection number ``at_connection`` (before the greeting)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._victims: tuple[int, ...] = ()
        self._at_message: int | None = None
        self._at_connection: int | None = None
        self._delay = 0.0
        self._kill_lock = threading.Lock()
        self.fired = threading.Event()
        self.killed_at = 0  # messages received when the kill was sent

    def arm(
        self,
        *pids: int,
        at_message: int | None = None,
        at_connection: int | None = None,
        delay: float = 0.0,
    ) -> None:
        with self._kill_lock:
            self._victims, self._delay = pids, delay
            self._at_message, self._at_connection = at_message, at_connection
            self.fired.clear()

    def disarm(self) -> None:
        with self._kill_lock:
            self._victims, self._at_message, self._at_connection = (), None, None

    def _kill(self) -> None:
        with self._kill_lock:
            pids, self._victims = self._victims, ()
        if not pids:
            return
        self.killed_at = len(self.messages)
        if self._delay:
            threading.Timer(self._delay, _sigkill, (pids, self.fired)).start()
        else:
            _sigkill(pids, self.fired)

    def _record(self, smtp: Any, envelope: Any) -> None:
        super()._record(smtp, envelope)
        if self._at_message is not None and len(self.messages) >= self._at_message:
            self._kill()

    def _factory(self) -> Any:
        if self._at_connection is not None and self.connections + 1 >= self._at_connection:
            self._kill()
        return super()._factory()


def _sigkill(pids: tuple[int, ...], fired: threading.Event) -> None:
    """Kill the first of ``pids`` still running (one that exited is not, reaped or not: a
    kill would "succeed" on it and kill nothing)."""
    fired.set()  # first: the test may see the process die before this thread runs again
    for pid in pids:
        if not _running(pid):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        return
    fired.clear()


def _running(pid: int) -> bool:
    """Whether ``pid`` runs: not gone, and not a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@dataclass
class World:
    tmp: Path
    server: KillingServer
    n: int
    concurrency: int
    runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    _numbers: dict[int, int] = field(default_factory=dict)  # pid -> run number (log files)

    @property
    def db(self) -> Path:
        return self.tmp / "digest.db"

    @property
    def config(self) -> Path:
        return self.tmp / "config.toml"

    @property
    def emails(self) -> set[str]:
        return {email(i) for i in range(self.n)}

    def start(
        self, *, file_size_limit: int | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Launch ``digest run``; ``file_size_limit``: no file it writes may grow past that
        many bytes (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write fails with EFBIG, as
        on a full disk)."""
        number = len(self._numbers)
        out = (self.tmp / f"run{number}.out").open("w")
        err = (self.tmp / f"run{number}.err").open("w")
        env = {
            **os.environ,
            "DIGEST_SECRET": "faults-test-secret-0123456789abcdefgh",
            **(env or {}),
        }
        prefix = [sys.executable, "-m", "digest"]
        if file_size_limit is not None:
            prefix = [sys.executable, "-c", _LIMITED, str(file_size_limit)]
        command = [*prefix, "--config", str(self.config), "run", "--date", DAY]
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=self.tmp)
        out.close()
        err.close()
        self._numbers[proc.pid] = number
        return proc

    def wait(
        self, proc: subprocess.Popen[str], timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc.wait(timeout)
        number = self._numbers[proc.pid]
        done = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            (self.tmp / f"run{number}.out").read_text(),
            (self.tmp / f"run{number}.err").read_text(),
        )
        self.runs.append(done)
        return done

    def run(self, **options: Any) -> subprocess.CompletedProcess[str]:
        return self.wait(self.start(**options))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql).fetchall()

    def statuses(self) -> dict[str, int]:
        return dict(self.query("SELECT status, count(*) FROM deliveries GROUP BY status"))

    def marked_sent(self) -> set[str]:
        return {r[0] for r in self.query("SELECT message_id FROM deliveries WHERE status='sent'")}


def email(i: int) -> str:
    return f"reader{i:03}@example.org"


def listing_folder(tmp: Path) -> Path:
    return write_days(
        tmp / "listings",
        {
            DAY: [
                item(f"2511.{i:05}", f"Paper {i} on things", "We study things.")
                for i in range(PAPERS)
            ]
        },
    )


def template_db(tmp: Path, n: int) -> Path:
    """A database file with ``n`` active subscribers, to copy into each world."""
    path = tmp / "template.db"
    with Store(f"sqlite:///{path}") as store:
        store.members.import_subscribers([Subscriber(email=email(i)) for i in range(n)])
    return path


def make_world(
    tmp: Path, template: Path, listings: Path, server: KillingServer, n: int, concurrency: int
) -> World:
    world = World(tmp, server, n, concurrency)
    world.db.write_bytes(template.read_bytes())
    world.config.write_text(
        f"""database = "sqlite:///{world.db}"
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
concurrency = {concurrency}
max_attempts = 2
timeout = 10
""",
        "utf-8",
    )
    return world


def kill_when(
    proc: subprocess.Popen[str], db: Path, ready: Callable[[sqlite3.Connection], bool]
) -> bool:
    """SIGKILL ``proc`` as soon as ``ready`` holds of its database (polled every ms);
    False when the process ended first."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None, timeout=5)
    try:
        while proc.poll() is None:
            try:
                hit = ready(conn)
            except sqlite3.OperationalError:  # a table not made yet, a lock: look again
                hit = False
            if hit:
                proc.send_signal(signal.SIGKILL)
                return True
            time.sleep(0.001)
        return False
    finally:
        conn.close()


def count(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


@dataclass(frozen=True)
class Tally:
    """What the server received, per Message-ID and per recipient."""

    per_id: Counter[str]
    ids_per_rcpt: dict[str, set[str]]

    @classmethod
    def of(cls, server: SmtpServer) -> Tally:
        per_id: Counter[str] = Counter()
        ids_per_rcpt: dict[str, set[str]] = {}
        for m in server.messages:
            mid = str(m.message["Message-ID"])
            per_id[mid] += 1
            for rcpt in m.rcpt_tos:
                ids_per_rcpt.setdefault(rcpt, set()).add(mid)
        return cls(per_id, ids_per_rcpt)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.per_id.values())

    def lost(self, emails: set[str]) -> set[str]:
        return emails - set(self.ids_per_rcpt)
