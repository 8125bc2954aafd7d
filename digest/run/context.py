"""The run's context: the store, listing source, sender, renderer and secret a run needs,
made from the configuration (or injected by tests)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from digest.compose import Renderer
from digest.config import Config
from digest.deliver import FileOutboxSender, Sender, SmtpSender
from digest.sources import ListingSource, make_source
from digest.store import Store

SECRET_ENV = "DIGEST_SECRET"


@dataclass(frozen=True)
class Context:
    """Everything a run needs from the outside world, injected."""

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
    context = None
    if not smtp.verify_tls:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return SmtpSender(
        smtp.host,
        smtp.port,
        security=smtp.security,  # type: ignore[arg-type]
        username=smtp.username,
        password=smtp.password(),
        timeout=smtp.timeout,
        concurrency=smtp.concurrency,
        max_attempts=smtp.max_attempts,
        tls_context=context,
    )


def make_context(
    config: Config, store: Store, *, now: datetime | None = None, sender: Sender | None = None
) -> Context:
    secret_text = os.environ.get(SECRET_ENV)
    secret = secret_text.encode() if secret_text else store.secret()
    src = config.source
    return Context(
        config=config,
        store=store,
        source=make_source(
            src.kind,
            str(src.path) if src.kind == "file" else src.url,
            timeout=src.timeout,
            max_retries=src.retries,
            max_bytes=src.max_bytes,
        ),
        sender=sender or make_sender(config),
        renderer=Renderer(
            config.templates_dir, site_title=config.feeds.title, base_url=config.base_url
        ),
        secret=secret,
        now=now or datetime.now(UTC),
    )
