"""The one declaration of settings (key, check, default, help) and the :class:`Config` they fill.

Every key of a config file outside ``[[subscribers]]`` is declared once in :data:`SETTINGS`;
the loader, ``config.example.toml`` and the docs all come from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.config.checks import (
    address,
    base_url,
    boolean,
    choice,
    header_value,
    integer,
    mailbox,
    number,
    optional,
    schedule_field,
    text,
    time_of_day,
    workers,
    zone,
)
from digest.config.declaration import Setting as Setting  # re-exported
from digest.config.mailbox import MAILBOX_SETTINGS, MailboxConfig
from digest.config.passwords import env_password
from digest.config.queue_settings import QUEUE_SETTINGS
from digest.config.sources import SourceSettings
from digest.models import ABSTRACT_MODES, Subscriber
from digest.schedule import Schedule, check_frequency, check_weekday

#: Every key of a config file outside ``[[subscribers]]``.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database",
        text(),
        "sqlite:///digest.db",
        "SQLAlchemy URL; sqlite paths are relative to this file; "
        "PostgreSQL: postgresql+psycopg://user@host/db",
    ),
    Setting("timezone", zone(), "UTC", "default zone for listing dates and send times"),
    Setting(
        "base_url",
        base_url(),
        "http://localhost:8000",
        "public URL used in links (feeds, unsubscribe, archive)",
    ),
    Setting(
        "templates_dir",
        optional(text()),
        None,
        "folder of your own templates, tried before the bundled ones",
        path=True,
        example="my-templates",
    ),
    Setting(
        "user_agent",
        optional(header_value()),
        None,
        "User-Agent of every request to a source, with your contact as arXiv asks; default:"
        " paper-digest, its version and mail.from's address",
        example="paper-digest (https://digest.example.org; ops@example.org)",
    ),
    Setting(
        "mail.from",
        mailbox(),
        "Paper Digest <digest@localhost.localdomain>",
        "the From header of every email",
        example="Paper Digest <digest@example.org>",
    ),
    Setting(
        "mail.outbox_dir",
        text(),
        "outbox",
        "with no [smtp] host, each message is written here as an .eml file",
        path=True,
    ),
    Setting(
        "mail.list_id",
        optional(text()),
        None,
        "List-Id header; default: derived from the From address",
        example="Paper Digest <digest.example.org>",
    ),
    Setting(
        "mail.max_papers",
        integer(1, 10_000),
        30,
        "default per-email cap for subscribers that set none",
    ),
    Setting(
        "mail.abstract",
        choice(*ABSTRACT_MODES),
        "short",
        'how much of each abstract a digest shows, for subscribers that chose none: "full"'
        ' (up to ~600 characters), "short" (its first sentences, up to ~300 characters, and'
        ' a link to the paper) or "none" (titles, authors and links)',
    ),
    Setting(
        "mail.like_threshold",
        number(0, 1),
        0.35,
        "default for subscribers with likes: how similar (0-1) to a paper they like a paper"
        " must be to be picked for its likeness",
    ),
    Setting(
        "mail.max_hard_bounces",
        integer(1, 1000),
        3,
        "after this many permanent failures in a row a subscriber is suspended",
    ),
    Setting(
        "mail.bounce_address",
        optional(address()),
        None,
        "envelope sender of the digests: each goes out as bounces+<token>@example.org"
        " (VERP), so a bounce names its delivery; unset: the From address, no tokens",
        example="bounces@example.org",
    ),
    Setting(
        "mail.admin",
        optional(address()),
        None,
        "operator address for alerts about failing runs; never a subscriber's",
        example="ops@example.org",
    ),
    Setting(
        "mail.alert_after",
        integer(1, 1000),
        3,
        "alert mail.admin after this many failed runs in a row (and once more on recovery)",
    ),
    Setting(
        "smtp.host",
        optional(text()),
        None,
        "SMTP server; without it mail goes to mail.outbox_dir",
        example="smtp.example.org",
    ),
    Setting("smtp.port", integer(1, 65535), 587, "SMTP port (25, 465 for tls, 587 for starttls)"),
    Setting(
        "smtp.security",
        optional(choice("none", "starttls", "tls")),
        None,
        '"none" | "starttls" | "tls"; unset: "tls" on port 465, "starttls" on 587 or with a'
        ' username, else "none". With a username, TLS is mandatory',
        example="starttls",
    ),
    Setting(
        "smtp.username",
        optional(text()),
        None,
        "AUTH user; leave out for no AUTH",
        example="digest",
    ),
    Setting(
        "smtp.password_env",
        text(),
        "DIGEST_SMTP_PASSWORD",
        "the secret comes from this environment variable, never from the file",
    ),
    Setting("smtp.timeout", number(1, 600), 30.0, "seconds before an SMTP step is abandoned"),
    Setting("smtp.concurrency", integer(1, 64), 4, "SMTP connections used at once"),
    Setting(
        "smtp.max_attempts",
        integer(1, 20),
        4,
        "tries per message on transient failures before leaving it for the next run",
    ),
    Setting(
        "smtp.verify_tls",
        boolean(),
        True,
        "verify the server's certificate (turn off only for a test server)",
    ),
    Setting(
        "schedule.send_at",
        time_of_day(),
        "08:00",
        'default send time ("HH:MM", in the subscriber\'s zone, else `timezone`)',
    ),
    Setting(
        "schedule.frequency",
        schedule_field(check_frequency),
        "daily",
        'default frequency: "daily" or "weekly"',
    ),
    Setting(
        "schedule.weekday",
        schedule_field(check_weekday),
        "mon",
        'default day of weekly digests: "mon" .. "sun"',
    ),
    Setting(
        "schedule.lookback_days",
        integer(0, 14),
        1,
        "each scheduled send fetches today's listing and this many days before it again",
    ),
    Setting(
        "schedule.catch_up_days",
        integer(1, 60),
        7,
        "after downtime, one catch-up digest covers at most this many listing dates",
    ),
    Setting(
        "schedule.check_every",
        integer(1, 3600),
        60,
        "seconds between two looks for subscribers whose send time has come",
    ),
    Setting(
        "run.workers",
        workers(),
        "auto",
        'processes building and sending the digests of `digest run`; "auto": one per CPU'
        " core once there are 2,000 active subscribers per process, else 1",
    ),
    Setting("web.host", text(), "127.0.0.1", "address `digest serve` listens on (0.0.0.0: all)"),
    Setting("web.port", integer(1, 65535), 8000, "port `digest serve` listens on"),
    Setting(
        "web.confirm_hours",
        integer(1, 24 * 30),
        72,
        "a confirmation link expires after this many hours",
    ),
    Setting(
        "web.subscribe_limit_ip",
        integer(1, 100_000),
        10,
        "subscribe attempts per client address per hour",
    ),
    Setting(
        "web.subscribe_limit_email",
        integer(1, 1000),
        3,
        "subscribe attempts (confirmation emails) per email address per hour",
    ),
    Setting(
        "web.max_body",
        integer(1024, 100 * 1024 * 1024),
        64 * 1024,
        "largest request body in bytes (a form needs a few KB); a longer one is refused"
        " with 413 as it arrives",
    ),
    Setting(
        "web.shutdown_timeout",
        number(1, 600),
        30.0,
        "on SIGTERM, seconds to let the SMTP transactions in flight finish",
    ),
    Setting(
        "web.metrics",
        boolean(),
        False,
        "serve /metrics (Prometheus text format) behind the /admin password"
        " (DIGEST_ADMIN_PASSWORD); off: 404",
    ),
    Setting(
        "feeds.dir", text(), "public", "where feed.xml, feed.atom and feeds/ are written", path=True
    ),
    Setting("feeds.title", text(), "Trending papers", "title of the public feeds"),
    Setting(
        "feeds.days",
        integer(1, 365),
        14,
        "the feeds hold the papers of this many most recent listing dates stored",
    ),
    Setting(
        "feeds.private_max_entries",
        integer(1, 10_000),
        100,
        "a subscriber's private feed holds at most this many of their newest papers",
    ),
    Setting(
        "history.keep_days",
        integer(1, 36_500),
        120,
        "what proves a paper was sent to someone is kept this many days after the digest,"
        " then pruned: a paper listed again after that may be sent again",
    ),
    Setting(
        "history.archive_days",
        integer(1, 36_500),
        365,
        "papers and listings older than this many days leave the archive and the database",
    ),
    *MAILBOX_SETTINGS,
    *QUEUE_SETTINGS,
)


_BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = ("mail", "smtp", "schedule", "run", "web", "feeds", "history", "mailbox")


@dataclass(frozen=True)
class SourceConfig:
    """One source in the shape of the old single ``[source]`` table (see
    :attr:`Config.source`)."""

    kind: str
    url: str
    path: Path | None
    timeout: float
    retries: int
    max_bytes: int


@dataclass(frozen=True)
class MailConfig:
    sender: str
    outbox_dir: Path
    list_id: str | None
    max_papers: int
    max_hard_bounces: int = 3
    admin: str | None = None
    abstract: str = "short"
    alert_after: int = 3
    bounce_address: str | None = None
    like_threshold: float = 0.35


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None
    port: int
    security: str
    username: str | None
    password_env: str
    timeout: float
    concurrency: int
    max_attempts: int
    verify_tls: bool
    rate: float | None = None  # messages per second for the whole run; None: no limit

    def password(self) -> str | None:
        """The SMTP password from the environment; ConfigError naming the variable if unset."""
        if not self.username:
            return None
        return env_password("smtp.password_env", self.password_env, self.username)


@dataclass(frozen=True)
class ScheduleConfig:
    send_at: str = "08:00"
    frequency: str = "daily"
    weekday: str = "mon"
    lookback_days: int = 1
    catch_up_days: int = 7
    check_every: int = 60


@dataclass(frozen=True)
class RunConfig:
    workers: int | str = "auto"  # "auto" or a count
    queue: bool = False  # batches for `digest worker` processes (PostgreSQL only)
    heartbeat_timeout: float = 60.0


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    confirm_hours: int = 72
    subscribe_limit_ip: int = 10
    subscribe_limit_email: int = 3
    max_body: int = 64 * 1024
    shutdown_timeout: float = 30.0
    metrics: bool = False


@dataclass(frozen=True)
class HistoryConfig:
    keep_days: int = 120
    archive_days: int = 365


@dataclass(frozen=True)
class FeedsConfig:
    dir: Path
    title: str
    days: int
    private_max_entries: int = 100


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; paths are absolute."""

    path: Path | None
    database: str
    timezone: str
    base_url: str
    templates_dir: Path | None
    sources: tuple[SourceSettings, ...]
    mail: MailConfig
    smtp: SmtpConfig
    feeds: FeedsConfig
    subscribers: tuple[Subscriber, ...]
    schedule: ScheduleConfig = ScheduleConfig()
    web: WebConfig = WebConfig()
    run: RunConfig = RunConfig()
    history: HistoryConfig = HistoryConfig()
    mailbox: MailboxConfig = field(default_factory=MailboxConfig)
    user_agent: str | None = None  # None: made by the run from mail.from

    @property
    def source(self) -> SourceConfig:
        """Deprecated: the first enabled source in the old ``[source]`` shape, for callers
        not yet reading :attr:`sources`."""
        first = next(s for s in self.sources if s.enabled)
        return SourceConfig(
            kind=first.kind,
            url=first.url or (first.rss_url if first.kind == "arxiv" else ""),
            path=first.path,
            timeout=first.timeout,
            retries=first.retries,
            max_bytes=first.max_bytes,
        )

    @property
    def enabled_sources(self) -> tuple[SourceSettings, ...]:
        """The sources a run reads."""
        return tuple(s for s in self.sources if s.enabled)

    def schedule_of(self, sub: Subscriber) -> Schedule:
        """A subscriber's schedule, with this configuration's defaults filled in."""
        return Schedule.make(
            send_at=sub.send_at or self.schedule.send_at,
            timezone=sub.timezone or self.timezone,
            frequency=sub.frequency or self.schedule.frequency,
            weekday=sub.weekday or self.schedule.weekday,
            days=list(sub.days) if sub.days else None,
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
