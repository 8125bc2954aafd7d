"""Serve: the long-running service; the web app and the scheduler.

``app`` (the Starlette app: routes, error pages, lifespan, health check), ``pages`` (what
every handler shares: site state, pages, signed links, CSRF), ``forms`` (the subscribe and
manage form), ``limits`` (rate limits, counted in the database), ``middleware`` (the
access log and the request body limit), ``logfmt`` (one-line ``key=value`` logs, tokens
redacted), ``subscribe`` (subscribe, confirm), ``manage`` (manage,
unsubscribe; ``manage_sources``: its choice of sources), ``feeds`` (feeds over HTTP),
``archive`` (archive pages), ``preview`` (the live preview), ``scheduler`` (APScheduler:
each subscriber's digest at their own hour), ``mailbox`` (the scheduled job reading the
bounce mailbox). May import ``run`` and below; never ``cli``.
"""

from digest.serve.app import (
    create_app,
)
from digest.serve.feeds import (
    not_modified,
)
from digest.serve.limits import (
    MemoryEvents,
    RateLimiter,
)
from digest.serve.logfmt import (
    LogfmtFormatter,
    redact,
    use_logfmt,
)
from digest.serve.middleware import (
    AccessLog,
    BodyLimit,
)
from digest.serve.pages import (
    CSRF_COOKIE,
)
from digest.serve.scheduler import (
    PassReport,
    Service,
    next_sends,
    schedule_of,
    send_due,
)

__all__ = [
    "CSRF_COOKIE",
    "AccessLog",
    "BodyLimit",
    "LogfmtFormatter",
    "MemoryEvents",
    "PassReport",
    "RateLimiter",
    "Service",
    "create_app",
    "next_sends",
    "not_modified",
    "redact",
    "schedule_of",
    "send_due",
    "use_logfmt",
]
