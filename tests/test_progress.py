"""Progress of long work: a counter the work bumps for next to nothing, a rich bar on a
terminal, a log line every few seconds elsewhere (digest run, digest subscribers import)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from digest.cli.progress import line, reporting
from digest.run import Progress
from tests.support.listings import item, write_days
from tests.support.site import digest, write_config


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def work(progress: Progress, steps: int, pause: float) -> None:
    for _ in range(steps):
        progress.advance()
        time.sleep(pause)


def test_off_a_terminal_a_line_every_few_seconds_and_one_at_the_end() -> None:
    out = io.StringIO()
    with reporting(Progress("subscribers", 40), "import", stream=out, every=0.05) as progress:
        work(progress, 40, 0.005)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2, lines
    assert lines[0].startswith("import: ") and " of 40 subscribers, " in lines[0]
    assert "/s" in lines[0]
    assert lines[-1].startswith("import: 40 of 40 subscribers") and lines[-1].endswith("(done)")


def test_short_work_off_a_terminal_says_nothing() -> None:
    out = io.StringIO()
    with reporting(Progress("digests"), "run", stream=out, every=5) as progress:
        progress.advance(3)
    assert out.getvalue() == ""


def test_on_a_terminal_a_bar_with_rate_and_time_left() -> None:
    out = Terminal()
    with reporting(Progress("digests", 30), "run", stream=out) as progress:
        work(progress, 30, 0.02)
    drawn = out.getvalue()
    assert "run" in drawn and "digests" in drawn and "/s" in drawn
    assert "30/30" in drawn  # the last update before the bar goes away


def test_a_line_says_count_rate_and_time_left() -> None:
    p = Progress("digests", 5000)
    p.advance(1200)
    assert line(p, "run", 30.0) == "run: 1,200 of 5,000 digests, 40/s, about 1m35s left"
    p.counted = lambda: 7  # a run's report keeps the count: read from there
    assert line(p, "run", 1.0) == "run: 7 of 5,000 digests, 7/s, about 11m53s left"
    assert line(Progress("rows"), "prune", 0.0) == "prune: 0 rows, 0/s"


def test_the_counter_is_read_a_few_times_a_second_whatever_the_work() -> None:
    """A million steps counted while the reporter reads: the hot path is one addition, and
    the reporter's thread reads the count at most 4 times a second (so it costs the work
    next to nothing; measured by the benches, not here)."""
    progress = Progress("digests", 1_000_000)
    out = Terminal()
    start = time.monotonic()
    with reporting(progress, "run", stream=out):
        for _ in range(1_000_000):
            progress.advance()
    took = time.monotonic() - start
    assert progress.value() == 1_000_000
    assert out.getvalue().count("run ") <= 4 * took + 5, out.getvalue()  # frames drawn
    assert threading.active_count() >= 1


def test_digest_run_and_import_off_a_terminal_print_what_they_did(
    tmp_path: Path, db_url: str
) -> None:
    listings = write_days(tmp_path / "listings", {"2026-11-16": [item("2611.1", "Diffusion")]})
    write_config(tmp_path, db_url, listings, mail='outbox_dir = "outbox"')
    people = "email\n" + "".join(f"u{i}@example.org\n" for i in range(20))
    (tmp_path / "p.csv").write_text(people, "utf-8")
    imported = digest(tmp_path, "subscribers", "import", str(tmp_path / "p.csv"))
    assert imported.exit_code == 0 and "added 20," in imported.stdout
    ran = digest(tmp_path, "run", "--date", "2026-11-16")
    assert ran.exit_code == 0, ran.output
    assert "sent 21, failed 0, deferred 0" in ran.stdout
