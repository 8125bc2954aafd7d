"""``digest serve``: the scheduler and the web app, until stopped."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import sys
from dataclasses import replace
from urllib.parse import urlsplit

import click

from digest.cli.shared import EXIT_USAGE, State, guard

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_ANY = {"0.0.0.0", "::", ""}


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def dead_links(base_url: str, host: str, port: int) -> str | None:
    """Why the links built on ``base_url`` cannot reach a server listening on ``host``:``port``,
    or None when they can (or when nothing can be told: a name other than localhost may be
    a reverse proxy in front of us).

    ``dead_links("http://localhost:8000", "127.0.0.1", 8080)`` says the ports differ;
    ``("https://digest.example.org", "127.0.0.1", 8000)`` is None (a proxy's job).
    """
    url = urlsplit(base_url)
    target = url.hostname or ""
    target_port = url.port or (443 if url.scheme == "https" else 80)
    if _loopback(target):
        if host not in _ANY and not _loopback(host):
            return f"{host} is not this machine's loopback address that {target} names"
        if target_port != port:
            return f"it points to port {target_port}, not {port}"
        return None
    if _literal(target) and host not in _ANY and not _literal_same(target, host):
        return f"it points to {target}, not {host}"
    return None


def _literal_same(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


@click.command()
@click.option("--host", metavar="H", help="Address to listen on (default: web.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), metavar="P", help="Port (default: web.port)."
)
@click.pass_obj
def serve(state: State, host: str | None, port: int | None) -> None:
    """Run the scheduler and the web app (subscribe, confirm, manage, feeds) until stopped."""
    import uvicorn

    from digest.run import MAKE_SECRET, SECRET_ENV, env_secret, make_context
    from digest.serve import Service, create_app, use_logfmt

    # The same check as run and send (a short one is refused), but serve needs one set:
    # the database's fallback secret is for a single machine's cron runs.
    secret = guard(lambda: env_secret(os.environ))
    if secret is None:
        click.echo(
            f"error: {SECRET_ENV} is not set: digest serve signs the confirm, manage and"
            " unsubscribe links with it\n"
            f"hint: make one with  export {SECRET_ENV}=$({MAKE_SECRET})  and keep it: changing"
            " it breaks the links in emails already sent",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    cfg = state.config()
    if cfg.mailbox.kind == "imap":  # said now, as for the SMTP one, not at the first pass
        guard(cfg.mailbox.password)
    level = logging.getLogger().getEffectiveLevel()
    # One logfmt line per event (a request, a pass) from here on, whatever -v says: journald
    # and log shippers read it.
    use_logfmt(level)
    store = state.store()
    base = guard(lambda: make_context(cfg, store))
    service = Service(lambda now: replace(base, now=now), tick_seconds=cfg.schedule.check_every)
    app = create_app(lambda: base, service, secret)
    the_host, the_port = host or cfg.web.host, port or cfg.web.port
    listen = f"http://{the_host}:{the_port}"
    logging.getLogger("digest.serve").info(
        "serving %s on %s (Ctrl-C to stop)",
        cfg.base_url,
        listen,
        extra={"fields": {"base_url": cfg.base_url, "listen": listen}},
    )
    problem = dead_links(cfg.base_url, the_host, the_port)
    if problem:
        # Every link in an email (confirm, manage, unsubscribe, archive) starts with base_url.
        logging.getLogger("digest.serve").warning(
            "base_url %s does not lead here (%s): the links in emails will not work;"
            " set base_url, or --host and --port, to match",
            cfg.base_url,
            problem,
            extra={"fields": {"base_url": cfg.base_url, "listen": listen}},
        )
    if level > logging.DEBUG:  # a line per tick otherwise: our own pass log says what matters
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown: the service finishes what is in
    # flight), then re-raises the signal with the handler it found: make that one a no-op
    # so that a clean stop exits 0, as systemd and Docker expect.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        app,
        host=the_host,
        port=the_port,
        log_level="info" if level <= logging.INFO else "warning",
        # Our logging as configured above (uvicorn's would colour a TTY and log whole URLs):
        # the access log is digest.serve.middleware.AccessLog's, tokens redacted.
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=int(cfg.web.shutdown_timeout) + 5,
    )
    store.close()
