"""Loading and validating the TOML configuration: one declaration drives loader, example and docs.

Every setting is declared once in :data:`SETTINGS` (key, kind, default, help). The loader
checks the whole file against it and reports every problem at once, with its key and value;
unknown keys are errors that suggest the closest valid key. The result is an immutable
:class:`Config`.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError, ConfigProblem, QueryError
from digest.models import Subscriber
from digest.schedule import (
    Schedule,
    ScheduleError,
    check_days,
    check_frequency,
    check_weekday,
    parse_send_at,
)
from digest.select import validate as validate_query

CONFIG_ENV = "DIGEST_CONFIG"
DEFAULT_CONFIG = "config.toml"


class Invalid(Exception):
    """A value does not fit its setting; the message says what was expected."""


Check = Callable[[Any], Any]


def _show(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def text(*, empty: bool = False) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("expected a string")
        if not empty and not value.strip():
            raise Invalid("expected a non-empty string")
        return value

    return check


def integer(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"expected an integer {low}-{high}")
        return value

    return check


def number(low: float, high: float) -> Check:
    def check(value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not low <= value <= high:
            raise Invalid(f"expected a number {low:g}-{high:g}")
        return float(value)

    return check


def boolean() -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("expected true or false")
        return value

    return check


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid("expected one of " + ", ".join(f'"{o}"' for o in options))
        return str(value)

    return check


def workers() -> Check:
    def check(value: Any) -> int | str:
        if value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise Invalid('expected "auto" or an integer 1-64')
        return value

    return check


def zone() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise Invalid('expected an IANA time zone name such as "Europe/Paris"')
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Invalid('expected an IANA time zone name such as "Europe/Paris"') from exc
        return value

    return check


def http_url() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise Invalid("expected an http:// or https:// URL")
        return value.rstrip("/")

    return check


def address() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("expected an email address")
        return normalise_address(value)

    return check


def mailbox() -> Check:
    """A From header value: ``Name <addr@example.org>`` or a bare address."""

    def check(value: Any) -> str:
        from email.utils import parseaddr

        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise Invalid('expected "Name <address@example.org>"')
        _, addr = parseaddr(value)
        normalise_address(addr)
        return value.strip()

    return check


def queries() -> Check:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
            raise Invalid("expected a list of query strings")
        for q in value:
            try:
                validate_query(q)
            except QueryError as exc:
                raise Invalid(
                    f"invalid query {q!r} at position {exc.position}: {exc.reason}"
                ) from exc
        return tuple(value)

    return check


def schedule_field(convert: Callable[[Any], Any]) -> Check:
    """A check built from one of :mod:`digest.schedule`'s validators."""

    def check(value: Any) -> Any:
        try:
            return convert(value)
        except ScheduleError as exc:
            raise Invalid(exc.message) from exc

    return check


def time_of_day() -> Check:
    return schedule_field(lambda v: parse_send_at(v).strftime("%H:%M"))


def default_security(port: int, username: str | None) -> str:
    """The SMTP security mode when none is set: what the port and AUTH call for."""
    if port == 465:
        return "tls"
    if port == 587 or username:
        return "starttls"
    return "none"


def optional(check: Check) -> Check:
    def inner(value: Any) -> Any:
        return None if value is None else check(value)

    return inner


def normalise_address(value: str) -> str:
    """A checked, normalised email address (domain lower-cased); raises :class:`Invalid`."""
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"expected an email address ({exc})") from exc
    # Local parts are case-sensitive in theory, never in practice: one person, one row.
    return str(result.normalized).lower()


@dataclass(frozen=True)
class Setting:
    """One configuration key: dotted name, how to check it, its default and its help."""

    key: str
    check: Check
    default: Any
    help: str
    path: bool = False  # a filesystem path, relative to the config file
    example: Any = None  # value shown in config.example.toml, when not the default


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
        http_url(),
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
        "source.kind",
        choice("huggingface", "file"),
        "huggingface",
        '"huggingface" (the daily papers API) or "file" (local JSON listings)',
    ),
    Setting(
        "source.url",
        http_url(),
        "https://huggingface.co/api/daily_papers",
        'the listing API, for kind = "huggingface"',
    ),
    Setting(
        "source.path",
        optional(text()),
        None,
        'for kind = "file": a folder of YYYY-MM-DD.json listings, or one JSON file',
        path=True,
        example="listings",
    ),
    Setting("source.timeout", number(1, 600), 30.0, "seconds before a request is abandoned"),
    Setting(
        "source.retries",
        integer(0, 10),
        4,
        "attempts after a timeout, 5xx or 429 before the run fails",
    ),
    Setting(
        "source.max_bytes",
        integer(1_000, 1_000_000_000),
        20_000_000,
        "a response larger than this is refused",
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
        "mail.max_hard_bounces",
        integer(1, 1000),
        3,
        "after this many permanent failures in a row a subscriber is suspended",
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
        "web.shutdown_timeout",
        number(1, 600),
        30.0,
        "on SIGTERM, seconds to let the SMTP transactions in flight finish",
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
)

#: Every key of one ``[[subscribers]]`` entry.
SUBSCRIBER_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "email", address(), None, "the address digests go to (required)", example="ada@example.org"
    ),
    Setting("name", optional(text()), None, "how to greet them", example="Ada"),
    Setting(
        "keywords",
        queries(),
        (),
        "queries; a paper matching any of them is sent (empty: every paper)",
        example=['"large language model" AND survey', "diffusion"],
    ),
    Setting(
        "exclude",
        queries(),
        (),
        "queries; a paper matching any of them is never sent",
        example=["medical"],
    ),
    Setting(
        "max_papers",
        optional(integer(1, 10_000)),
        None,
        'papers per email; the rest summarised as "N more" with a link',
        example=30,
    ),
    Setting(
        "send_at",
        optional(time_of_day()),
        None,
        "their send time; default schedule.send_at",
        example="07:30",
    ),
    Setting(
        "timezone",
        optional(zone()),
        None,
        "their IANA time zone; default the top-level timezone",
        example="Europe/Berlin",
    ),
    Setting(
        "frequency",
        optional(schedule_field(check_frequency)),
        None,
        '"daily" or "weekly"; default schedule.frequency',
        example="daily",
    ),
    Setting(
        "weekday",
        optional(schedule_field(check_weekday)),
        None,
        "day of a weekly digest; default schedule.weekday",
        example="mon",
    ),
    Setting(
        "days",
        optional(schedule_field(check_days)),
        None,
        "daily digests only on these days; default every day",
        example=["mon", "tue", "wed", "thu", "fri"],
    ),
)

_BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = ("source", "mail", "smtp", "schedule", "run", "web", "feeds")


@dataclass(frozen=True)
class SourceConfig:
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
    alert_after: int = 3


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

    def password(self) -> str | None:
        """The SMTP password from the environment; ConfigError naming the variable if unset."""
        if not self.username:
            return None
        value = os.environ.get(self.password_env)
        if not value:
            raise ConfigError(
                [
                    ConfigProblem(
                        "smtp.password_env",
                        f"environment variable {self.password_env} is not set",
                        hint=f"export {self.password_env}=... with the password of {self.username}",
                    )
                ]
            )
        return value


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


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    confirm_hours: int = 72
    subscribe_limit_ip: int = 10
    subscribe_limit_email: int = 3
    shutdown_timeout: float = 30.0


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
    source: SourceConfig
    mail: MailConfig
    smtp: SmtpConfig
    feeds: FeedsConfig
    subscribers: tuple[Subscriber, ...]
    schedule: ScheduleConfig = ScheduleConfig()
    web: WebConfig = WebConfig()
    run: RunConfig = RunConfig()

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


def _suggest(key: str, valid: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_database(base: Path, url: str) -> str:
    """Make a relative ``sqlite:///file`` URL relative to the config file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(_resolve(base, rest))
    return url


def _check_table(
    data: Mapping[str, Any],
    settings: Sequence[Setting],
    prefix: str,
    problems: list[ConfigProblem],
    base: Path,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for setting in settings:
        name = setting.key.removeprefix(prefix)
        if name not in data:
            values[name] = setting.default
            continue
        raw = data[name]
        try:
            value = setting.check(raw)
        except Invalid as exc:
            problems.append(ConfigProblem(prefix + name, f"{exc}, got {_show(raw)}", raw))
            continue
        if setting.path and isinstance(value, str):
            value = _resolve(base, value)
        values[name] = value
    return values


def parse(data: Mapping[str, Any], *, base: Path, path: Path | None = None) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems: list[ConfigProblem] = []
    top_names = [s.key for s in SETTINGS if "." not in s.key]
    valid_top = [*top_names, *SECTIONS, "subscribers"]
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(ConfigProblem(key, f"expected a table [{key}], got {_show(value)}"))
                continue
            section_keys = [s.key.split(".", 1)[1] for s in SETTINGS if s.key.startswith(key + ".")]
            for sub in value:
                if sub not in section_keys:
                    problems.append(
                        ConfigProblem(
                            f"{key}.{sub}", "unknown key", hint=_suggest(sub, section_keys)
                        )
                    )
        elif key not in valid_top:
            home = [s.key for s in SETTINGS if s.key.endswith("." + key)]
            hint = (
                f"put it in its section: [{home[0].split('.')[0]}] {key} = ..."
                if home
                else _suggest(key, valid_top)
            )
            problems.append(ConfigProblem(key, "unknown key", hint=hint))

    flat: dict[str, Any] = {k: v for k, v in data.items() if k in top_names}
    for section in SECTIONS:
        table = data.get(section, {})
        if isinstance(table, dict):
            flat.update({f"{section}.{k}": v for k, v in table.items()})
    values = _check_table(flat, SETTINGS, "", problems, base)

    subscribers: list[Subscriber] = []
    raw_subs = data.get("subscribers", [])
    if not isinstance(raw_subs, list):
        problems.append(ConfigProblem("subscribers", "expected [[subscribers]] tables"))
        raw_subs = []
    seen: set[str] = set()
    sub_names = [s.key for s in SUBSCRIBER_SETTINGS]
    for i, entry in enumerate(raw_subs):
        where = f"subscribers[{i}]."
        if not isinstance(entry, dict):
            problems.append(ConfigProblem(f"subscribers[{i}]", "expected a table"))
            continue
        for key in entry:
            if key not in sub_names:
                problems.append(
                    ConfigProblem(where + key, "unknown key", hint=_suggest(key, sub_names))
                )
        if "email" not in entry:
            problems.append(ConfigProblem(where + "email", "missing: every subscriber needs one"))
            continue
        before = len(problems)
        sub = _check_table(entry, SUBSCRIBER_SETTINGS, where, problems, base)
        if len(problems) > before:
            continue
        if sub["email"] in seen:
            problems.append(
                ConfigProblem(where + "email", f"duplicate subscriber {_show(sub['email'])}")
            )
            continue
        seen.add(sub["email"])
        subscribers.append(
            Subscriber(
                email=sub["email"],
                name=sub["name"],
                keywords=tuple(sub["keywords"]),
                exclude=tuple(sub["exclude"]),
                max_papers=sub["max_papers"],
                send_at=sub["send_at"],
                timezone=sub["timezone"],
                frequency=sub["frequency"],
                weekday=sub["weekday"],
                days=sub["days"],
            )
        )

    if values.get("source.kind") == "file" and values.get("source.path") is None:
        problems.append(ConfigProblem("source.path", 'required when source.kind = "file"'))
    if values.get("smtp.security") == "none" and values.get("smtp.username"):
        problems.append(
            ConfigProblem(
                "smtp.security",
                'is "none" but smtp.username is set: the password would travel in clear',
                hint='use "starttls" or "tls"',
            )
        )
    if problems:
        raise ConfigError(problems, path=str(path) if path else None)

    return Config(
        path=path,
        database=_resolve_database(base, values["database"]),
        timezone=values["timezone"],
        base_url=values["base_url"],
        templates_dir=values["templates_dir"],
        source=SourceConfig(
            kind=values["source.kind"],
            url=values["source.url"],
            path=values["source.path"],
            timeout=values["source.timeout"],
            retries=values["source.retries"],
            max_bytes=values["source.max_bytes"],
        ),
        mail=MailConfig(
            sender=values["mail.from"],
            outbox_dir=_as_path(base, values["mail.outbox_dir"]),
            list_id=values["mail.list_id"],
            max_papers=values["mail.max_papers"],
            max_hard_bounces=values["mail.max_hard_bounces"],
            admin=values["mail.admin"],
            alert_after=values["mail.alert_after"],
        ),
        smtp=SmtpConfig(
            host=values["smtp.host"],
            port=values["smtp.port"],
            security=values["smtp.security"]
            or default_security(values["smtp.port"], values.get("smtp.username")),
            username=values["smtp.username"],
            password_env=values["smtp.password_env"],
            timeout=values["smtp.timeout"],
            concurrency=values["smtp.concurrency"],
            max_attempts=values["smtp.max_attempts"],
            verify_tls=values["smtp.verify_tls"],
        ),
        feeds=FeedsConfig(
            dir=_as_path(base, values["feeds.dir"]),
            title=values["feeds.title"],
            days=values["feeds.days"],
            private_max_entries=values["feeds.private_max_entries"],
        ),
        subscribers=tuple(subscribers),
        schedule=ScheduleConfig(
            send_at=values["schedule.send_at"],
            frequency=values["schedule.frequency"],
            weekday=values["schedule.weekday"],
            lookback_days=values["schedule.lookback_days"],
            catch_up_days=values["schedule.catch_up_days"],
            check_every=values["schedule.check_every"],
        ),
        web=WebConfig(
            host=values["web.host"],
            port=values["web.port"],
            confirm_hours=values["web.confirm_hours"],
            subscribe_limit_ip=values["web.subscribe_limit_ip"],
            subscribe_limit_email=values["web.subscribe_limit_email"],
            shutdown_timeout=values["web.shutdown_timeout"],
        ),
        run=RunConfig(workers=values["run.workers"]),
    )


def _as_path(base: Path, value: str | Path) -> Path:
    return value if isinstance(value, Path) else _resolve(base, value)


def find_config(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """Where the config is: ``--config``, else ``$DIGEST_CONFIG``, else ``./config.toml``."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def load(path: Path) -> Config:
    """Read and validate the config file at ``path``; raise :class:`ConfigError`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "",
                    "config file not found",
                    hint="copy config.example.toml to config.toml, pass --config PATH, "
                    f"or set {CONFIG_ENV}; `digest demo` runs without one",
                )
            ],
            path=str(path),
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=str(path)) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", path=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc
    return parse(data, base=path.resolve().parent, path=path)


def example_toml() -> str:
    """The text of ``config.example.toml``, generated from the declarations."""
    lines = [
        "# paper-digest configuration. Every key, with its default unless noted.",
        "# Relative paths are relative to this file.",
        "",
    ]

    def emit(setting: Setting, name: str, commented: bool = False) -> None:
        value = setting.example if setting.example is not None else setting.default
        lines.append(f"# {setting.help}")
        mark = "# " if commented or value is None else ""
        lines.append(f"{mark}{name} = {_toml_value(value)}")

    for s in SETTINGS:
        if "." not in s.key:
            emit(s, s.key)
    for section in SECTIONS:
        lines.append("")
        commented = section == "smtp"
        if commented:
            lines.append(
                "# Uncomment [smtp] to send real mail; without it mail goes to the outbox."
            )
        lines.append(("# " if commented else "") + f"[{section}]")
        for s in SETTINGS:
            if s.key.startswith(section + "."):
                emit(s, s.key.split(".", 1)[1], commented)
    lines += [
        "",
        "# Subscribers listed here are upserted into the database at every run.",
        "[[subscribers]]",
    ]
    for s in SUBSCRIBER_SETTINGS:
        emit(s, s.key)
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text_value = str(value)
    if '"' in text_value and "'" not in text_value:
        return f"'{text_value}'"
    return json.dumps(text_value, ensure_ascii=False)
