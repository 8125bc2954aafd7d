"""The settings of workers on several machines (``run.queue``) and of the run's sending
pace (``smtp.rate``), declared beside :data:`digest.config.settings.SETTINGS`."""

from __future__ import annotations

from digest.config.checks import boolean, number, optional
from digest.config.declaration import Setting

QUEUE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "smtp.rate",
        optional(number(0.01, 100_000)),
        None,
        "messages per second to the relay for the whole run, every worker and machine"
        " together (a provider's limit); unset: no limit",
        example=14,
    ),
    Setting(
        "run.queue",
        boolean(),
        False,
        "PostgreSQL only: `digest run` and `digest serve` queue the digests in batches for"
        " `digest worker` processes (any number, on any machines) instead of sending them",
    ),
    Setting(
        "run.heartbeat_timeout",
        number(5, 3600),
        60.0,
        "with run.queue: a worker silent this many seconds is taken for dead, and its batch"
        " is given to another worker",
    ),
)
