"""The run's context: the store, listing source, sender, renderer and secret a run needs,
made from the configuration (or injected by tests).

The listing source of a context made by :func:`make_context` is the configuration's
:class:`~digest.run.fetch.SourceSet` (every enabled source, fetched together); a test may
inject any object with ``async fetch(day) -> Listing``."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from digest.compose import Renderer
from digest.config import Config
from digest.deliver import FileOutboxSender, Sender, SmtpSender
from digest.errors import ConfigError, ConfigProblem
from digest.run.pace import SharedPace
from digest.store import Store

if TYPE_CHECKING:  # the sources (httpx, feedparser, lxml) only where a run fetches
    from digest.sources import ListingSource

SECRET_ENV = "DIGEST_SECRET"
#: Shortest ``DIGEST_SECRET`` accepted: ``secrets.token_urlsafe(32)`` gives 43 characters.
MIN_SECRET = 32
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Context:
    """Everything a run needs from the outside world, injected. ``source``: a
    :class:`~digest.run.fetch.SourceSet` when made from the configuration."""

    config: Config
    store: Store
    source: ListingSource
    sender: Sender
    renderer: Renderer
    secret: bytes
    now: datetime


def make_sender(config: Config) -> Sender:
    """SMTP when ``smtp.host`` is set, else ``.eml`` files in ``mail.outbox_dir``."""
    smtp = config.smtp
    if not smtp.host:
        return FileOutboxSender(config.mail.outbox_dir)
    return SmtpSender(
        smtp.host,
        smtp.port,
        security=smtp.security,  # type: ignore[arg-type]
        username=smtp.username,
        password=smtp.password(),
        timeout=smtp.timeout,
        concurrency=smtp.concurrency,
        max_attempts=smtp.max_attempts,
        tls_context=tls_context(smtp.verify_tls),
    )


def tls_context(verify_tls: bool) -> ssl.SSLContext | None:
    """The TLS context of a mail client (SMTP, IMAP): None, the client's own default that
    verifies certificates against the system store, or with ``verify_tls = false`` one that
    checks neither the certificate nor the host name (a test or self-signed server)."""
    if verify_tls:
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def env_secret(environ: Mapping[str, str]) -> bytes | None:
    """``DIGEST_SECRET`` from ``environ``, or None when it is not set.

    Raises :class:`ConfigError` (with the command that makes a good one) when it is set but
    shorter than :data:`MIN_SECRET` characters, empty included: links signed with it could
    be forged.
    """
    text = environ.get(SECRET_ENV)
    if text is None:
        return None
    if len(text) < MIN_SECRET:
        size = f"too short ({len(text)} of {MIN_SECRET} characters)" if text else "set but empty"
        problem = ConfigProblem(
            SECRET_ENV,
            f"{size}: it signs the confirm, manage and unsubscribe links, so it needs at least"
            f" {MIN_SECRET} characters",
        )
        raise ConfigError(
            [problem],
            hint=f"make one with  export {SECRET_ENV}=$({MAKE_SECRET})  and keep it: changing"
            " it breaks the links in emails already sent",
        )
    return text.encode()


def signing_secret(environ: Mapping[str, str], stored: Callable[[], bytes]) -> bytes:
    """``DIGEST_SECRET`` when set (checked by :func:`env_secret`); only when it is not set,
    the database's own secret, ``stored()`` (made on first use)."""
    secret = env_secret(environ)
    return secret if secret is not None else stored()


def make_context(
    config: Config,
    store: Store,
    *,
    now: datetime | None = None,
    sender: Sender | None = None,
    source: ListingSource | None = None,
) -> Context:
    """What a run needs, made from ``config``; the signing secret per :func:`signing_secret`.

    Raises :class:`ConfigError` for a ``DIGEST_SECRET`` too short to sign links with.
    """
    secret = signing_secret(os.environ, store.run_log.secret)
    sender = sender or make_sender(config)
    if isinstance(sender, SmtpSender) and config.smtp.rate:  # one pace for the whole run
        sender.pace = SharedPace(store, config.smtp.rate)
    return Context(
        config=config,
        store=store,
        # ``now`` given (tests, the demo, a worker): the sources' clock too; else the real
        # time of each fetch (``digest serve`` keeps this context's sources for every pass)
        source=source if source is not None else _sources(config, store, now),
        sender=sender,
        renderer=Renderer(
            config.templates_dir,
            site_title=config.feeds.title,
            base_url=config.base_url,
            show_sources=len(config.sources) > 1,
        ),
        secret=secret,
        now=now or datetime.now(UTC),
    )


def _sources(config: Config, store: Store, now: datetime | None) -> ListingSource:
    """The configured sources (imported here: a run's worker, given a ``source``, never
    imports httpx, feedparser and lxml)."""
    from digest.run.sources import make_sources

    return make_sources(config, store, now=now)
