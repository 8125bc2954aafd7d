"""Run: where the edges meet; the daily cycle fetch → diff → match → compose → deliver → feeds.

``daily`` (one run: the cycle), ``context`` (what a run needs, made from the config),
``share`` (delivering one share of the subscribers: resume, plan, compose, send), ``messages``
(one subscriber's digest as an email), ``outcomes`` (each delivery's fate recorded as it is
known), ``claims`` (claiming pending digests, re-queueing those of dead runs), ``report``
(what a run did; its record in the ``runs`` table), ``workers`` (worker processes of a run),
``queue`` (a run's batches for ``digest worker`` processes on several machines: procrastinate),
``pace`` (``smtp.rate``: one sending pace for the whole run),
``fetch`` (every source at once: :class:`SourceSet`), ``sources`` (the sources made from
the config), ``send`` (one-off sends), ``publish`` (feed files), ``status`` (``digest status``),
``source_health`` (each source's state: ``digest sources``, status, alerts), ``alerts`` (admin
alerts), ``preview`` (a day's matches for a query). May import every
layer below: ``store``, ``deliver``, ``sources``, ``config``, ``compose``, ``select`` and
the bottom layer; never ``serve`` or ``cli``.

Importing the package imports none of its modules but ``status``: each name below is
imported from its module on first use (``__getattr__``), so a process that needs a few of
them (a run's worker, spawned fresh: ``workers``) does not pay for all of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# ``status`` is both a module and a function of it: imported here, so that the name is the
# function whatever imports the module later (importing a submodule binds its name in the
# package, and only a name set after that wins). It needs nothing a worker does not.
from digest.run.status import (
    Counters,
    Status,
    counters,
    overview,
    status,
)

if TYPE_CHECKING:
    from digest.run.claims import (
        HOST,
        claimer,
        pid_alive,
        requeue_stale,
        stale_claim,
    )
    from digest.run.context import (
        MAKE_SECRET,
        MIN_SECRET,
        SECRET_ENV,
        Context,
        env_secret,
        make_context,
        make_sender,
    )
    from digest.run.daily import (
        run,
        write_feeds,
    )
    from digest.run.fetch import (
        CATCH_UP_DAYS,
        NamedSource,
        SourceSet,
        describe,
        known_papers,
        store_listing,
    )
    from digest.run.outcomes import (
        Recorder,
    )
    from digest.run.preview import (
        Previewer,
    )
    from digest.run.progress import Progress
    from digest.run.publish import (
        INDEX,
        SHARED,
        follows,
        private_target,
        publish_feeds,
        publish_private,
    )
    from digest.run.report import (
        RunInProgress,
        RunReport,
        recorded_run,
    )
    from digest.run.send import (
        send_once,
    )
    from digest.run.share import (
        BATCH,
        Pool,
        plan_batch,
        resume_items,
    )
    from digest.run.sources import (
        make_sources,
        named_source,
        user_agent,
    )
    from digest.run.workers import (
        PER_WORKER,
        cores,
        worker_count,
    )

#: Where each name lives: imported on first use (:func:`__getattr__`), so that a process
#: needing a few modules of ``run`` (a worker of a run) does not import them all.
_WHERE = {
    "BATCH": "share",
    "CATCH_UP_DAYS": "fetch",
    "HOST": "claims",
    "INDEX": "publish",
    "MAKE_SECRET": "context",
    "MIN_SECRET": "context",
    "PER_WORKER": "workers",
    "SECRET_ENV": "context",
    "SHARED": "publish",
    "Context": "context",
    "NamedSource": "fetch",
    "Pool": "share",
    "Previewer": "preview",
    "Progress": "progress",
    "Recorder": "outcomes",
    "RunInProgress": "report",
    "RunReport": "report",
    "SourceSet": "fetch",
    "claimer": "claims",
    "cores": "workers",
    "describe": "fetch",
    "env_secret": "context",
    "follows": "publish",
    "known_papers": "fetch",
    "make_context": "context",
    "make_sender": "context",
    "make_sources": "sources",
    "named_source": "sources",
    "pid_alive": "claims",
    "plan_batch": "share",
    "private_target": "publish",
    "publish_feeds": "publish",
    "publish_private": "publish",
    "recorded_run": "report",
    "requeue_stale": "claims",
    "resume_items": "share",
    "run": "daily",
    "send_once": "send",
    "stale_claim": "claims",
    "store_listing": "fetch",
    "user_agent": "sources",
    "worker_count": "workers",
    "write_feeds": "daily",
}


def __getattr__(name: str) -> object:
    """``from digest.run import X``: ``X`` imported from its module the first time."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "BATCH",
    "CATCH_UP_DAYS",
    "HOST",
    "INDEX",
    "MAKE_SECRET",
    "MIN_SECRET",
    "PER_WORKER",
    "SECRET_ENV",
    "SHARED",
    "Context",
    "Counters",
    "NamedSource",
    "Pool",
    "Previewer",
    "Progress",
    "Recorder",
    "RunInProgress",
    "RunReport",
    "SourceSet",
    "Status",
    "claimer",
    "cores",
    "counters",
    "describe",
    "env_secret",
    "follows",
    "known_papers",
    "make_context",
    "make_sender",
    "make_sources",
    "named_source",
    "overview",
    "pid_alive",
    "plan_batch",
    "private_target",
    "publish_feeds",
    "publish_private",
    "recorded_run",
    "requeue_stale",
    "resume_items",
    "run",
    "send_once",
    "stale_claim",
    "status",
    "store_listing",
    "user_agent",
    "worker_count",
    "write_feeds",
]
