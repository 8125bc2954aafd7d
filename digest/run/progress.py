"""How far long work has got (``digest run``, ``digest subscribers import``, later ``digest
prune``): a counter the work bumps, read by a reporter (:mod:`digest.cli.progress`).

The work's hot path pays one integer addition per step (:meth:`Progress.advance`), or
nothing at all where it already counts (a run's report: :attr:`Progress.counted`); the
reporter reads the count a few times a second from its own thread and does the drawing,
the clock and the rate.
"""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """``done`` of ``total`` (None: unknown yet) things called ``what`` ("messages")."""

    __slots__ = ("counted", "done", "total", "what")

    def __init__(self, what: str, total: int | None = None) -> None:
        self.what = what
        self.total = total
        self.done = 0
        #: Where the count lives when the work keeps it anyway (read instead of ``done``).
        self.counted: Callable[[], int] | None = None

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more done; cheap enough for every message."""
        self.done += steps

    def value(self) -> int:
        """How many are done now (called by the reporter, not the work)."""
        return self.counted() if self.counted is not None else self.done
