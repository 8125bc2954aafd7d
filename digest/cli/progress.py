"""The reporter of long work's :class:`~digest.run.Progress`: a rich progress bar on a
terminal (count, rate per second, time left), a log line every :data:`LOG_EVERY` seconds
otherwise (cron, systemd, a pipe). Used by ``digest run`` and ``digest subscribers
import``; ``digest prune`` is meant to use it the same way.

It reads the counter from its own thread at most :data:`REFRESH` times a second, so the
work itself never waits on the screen.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bar
from rich.text import Text

from digest.run import Progress

#: Seconds between two log lines when not on a terminal.
LOG_EVERY = 10.0
#: Bar updates per second on a terminal.
REFRESH = 4


@contextlib.contextmanager
def reporting(
    progress: Progress,
    label: str,
    *,
    stream: TextIO | None = None,
    every: float = LOG_EVERY,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Progress]:
    """Report ``progress`` while the block runs: a bar when ``stream`` (default stderr) is
    a terminal, else a line every ``every`` seconds and, if any was written, a last one."""
    out = stream or sys.stderr
    watch = _draw_bar if out.isatty() else _log_lines
    stop = threading.Event()
    thread = threading.Thread(
        target=watch, args=(progress, label, out, stop, every, clock), daemon=True
    )
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()


def line(progress: Progress, label: str, elapsed: float) -> str:
    """``run: 1,200 of 5,000 messages, 40/s, about 1m35s left``."""
    done, total = progress.value(), progress.total
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{label}: {done:,}" + (f" of {total:,}" if total else "") + f" {progress.what}"
    text += f", {rate:,.0f}/s"
    if total and rate > 0 and done < total:
        text += f", about {_duration((total - done) / rate)} left"
    return text


def _log_lines(
    progress: Progress,
    label: str,
    out: TextIO,
    stop: threading.Event,
    every: float,
    clock: Callable[[], float],
) -> None:
    start = clock()
    said = False
    while not stop.wait(every):
        click.echo(line(progress, label, clock() - start), file=out)
        said = True
    if said:  # a short piece of work says nothing; a long one says how it ended
        click.echo(line(progress, label, clock() - start) + " (done)", file=out)


class _Rate(ProgressColumn):
    """``40/s``: the task's rate over rich's recent samples."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s")


def _draw_bar(
    progress: Progress,
    label: str,
    out: TextIO,
    stop: threading.Event,
    every: float,
    clock: Callable[[], float],
) -> None:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(progress.what),
        _Rate(),
        TimeRemainingColumn(),
    )
    with Bar(*columns, console=Console(file=out), transient=True, auto_refresh=False) as bar:
        task = bar.add_task(label, total=progress.total)
        while True:
            stopping = stop.wait(1 / REFRESH)
            bar.update(task, completed=progress.value(), total=progress.total)
            bar.refresh()
            if stopping:
                break


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
