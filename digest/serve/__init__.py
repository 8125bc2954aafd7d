"""Serve: the long-running service; the web app and the scheduler.

``app`` (Starlette: subscribe, confirm, manage, archive, feeds over HTTP), ``scheduler``
(APScheduler: each subscriber's digest at their own hour). May import ``run`` and below; never
``cli``.
"""

from digest.serve.app import (
    CSRF_COOKIE,
    RateLimiter,
    create_app,
    not_modified,
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
    "PassReport",
    "RateLimiter",
    "Service",
    "create_app",
    "next_sends",
    "not_modified",
    "schedule_of",
    "send_due",
]
