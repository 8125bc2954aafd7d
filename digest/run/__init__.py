"""Run: where the edges meet; the daily cycle fetch → diff → match → compose → deliver → feeds.

``daily`` (one run, one-off sends), ``workers`` (worker processes sharing a run), ``publish``
(feed files), ``status`` (``digest status``, admin alerts), ``preview`` (a day's matches for a
query). May import every layer below: ``store``, ``deliver``, ``sources``, ``config``,
``compose``, ``select`` and the bottom layer; never ``serve`` or ``cli``.
"""

from digest.run.daily import (
    HOST,
    SECRET_ENV,
    Context,
    make_context,
    make_sender,
    pid_alive,
    run,
    send_once,
    stale_claim,
    write_feeds,
)
from digest.run.preview import (
    Previewer,
)
from digest.run.publish import (
    INDEX,
    SHARED,
    publish_feeds,
)
from digest.run.status import (
    Status,
    status,
)
from digest.run.workers import (
    PER_WORKER,
    cores,
    worker_count,
)

__all__ = [
    "HOST",
    "INDEX",
    "PER_WORKER",
    "SECRET_ENV",
    "SHARED",
    "Context",
    "Previewer",
    "Status",
    "cores",
    "make_context",
    "make_sender",
    "pid_alive",
    "publish_feeds",
    "run",
    "send_once",
    "stale_claim",
    "status",
    "worker_count",
    "write_feeds",
]
