"""Reading a config file: find it, parse the TOML, check every key, build the :class:`Config`.

The whole file is checked against the declarations and every problem is reported at once,
with its key and value; unknown keys suggest the closest valid key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from digest.config.mailbox import MailboxConfig, mailbox_problems
from digest.config.settings import (
    SECTIONS,
    SETTINGS,
    Config,
    FeedsConfig,
    HistoryConfig,
    MailConfig,
    RunConfig,
    ScheduleConfig,
    SmtpConfig,
    WebConfig,
)
from digest.config.sources import parse_sources, source_names
from digest.config.subscribers import parse_subscribers
from digest.config.table import check_table, resolve, show, suggest, unknown_keys
from digest.errors import ConfigError, ConfigProblem

CONFIG_ENV = "DIGEST_CONFIG"
DEFAULT_CONFIG = "config.toml"

_TOP_NAMES = [s.key for s in SETTINGS if "." not in s.key]
_VALID_TOP = [*_TOP_NAMES, *SECTIONS, "sources", "subscribers", "source"]


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


def parse(data: Mapping[str, Any], *, base: Path, path: Path | None = None) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems = _unknown_keys(data)
    values = check_table(_flatten(data), SETTINGS, "", problems, base)
    sources = parse_sources(data, base, problems)
    names = source_names(data)
    subscribers = parse_subscribers(data.get("subscribers", []), base, problems, sources=names)
    problems += _cross_checks(values)
    if problems:
        raise ConfigError(problems, path=str(path) if path else None)
    return Config(
        path=path,
        database=_resolve_database(base, values["database"]),
        timezone=values["timezone"],
        base_url=values["base_url"],
        templates_dir=values["templates_dir"],
        sources=sources,
        mail=_mail(values, base),
        smtp=_smtp(values),
        feeds=_feeds(values, base),
        subscribers=subscribers,
        schedule=ScheduleConfig(**_section(values, "schedule")),
        web=WebConfig(**_section(values, "web")),
        run=RunConfig(**_section(values, "run")),
        history=HistoryConfig(**_section(values, "history")),
        mailbox=_mailbox(values, base),
        user_agent=values["user_agent"],
    )


def _unknown_keys(data: Mapping[str, Any]) -> list[ConfigProblem]:
    """Keys outside the declaration, and sections that are not tables."""
    problems: list[ConfigProblem] = []
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(ConfigProblem(key, f"expected a table [{key}], got {show(value)}"))
                continue
            section_keys = [s.key.split(".", 1)[1] for s in SETTINGS if s.key.startswith(key + ".")]
            problems += unknown_keys(value, section_keys, key + ".")
        elif key not in _VALID_TOP:
            home = [s.key for s in SETTINGS if s.key.endswith("." + key)]
            hint = (
                f"put it in its section: [{home[0].split('.')[0]}] {key} = ..."
                if home
                else suggest(key, _VALID_TOP)
            )
            problems.append(ConfigProblem(key, "unknown key", hint=hint))
    return problems


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """The document's settings by dotted key: ``{"smtp.port": 465, ...}``."""
    flat: dict[str, Any] = {k: v for k, v in data.items() if k in _TOP_NAMES}
    for section in SECTIONS:
        table = data.get(section, {})
        if isinstance(table, dict):
            flat.update({f"{section}.{k}": v for k, v in table.items()})
    return flat


def _cross_checks(values: Mapping[str, Any]) -> list[ConfigProblem]:
    """Problems of settings valid alone but not together."""
    problems = mailbox_problems(values)
    if values.get("smtp.security") == "none" and values.get("smtp.username"):
        problems.append(
            ConfigProblem(
                "smtp.security",
                'is "none" but smtp.username is set: the password would travel in clear',
                hint='use "starttls" or "tls"',
            )
        )
    if values.get("run.queue") and str(values.get("database", "")).startswith("sqlite"):
        problems.append(
            ConfigProblem(
                "run.queue",
                "is true but the database is SQLite: the queue is for PostgreSQL only",
                True,
                hint="set database to a postgresql+psycopg:// URL, or leave run.queue out"
                " (SQLite runs on one machine, with run.workers)",
            )
        )
    return problems


def default_security(port: int, username: str | None) -> str:
    """The SMTP security mode when none is set: what the port and AUTH call for."""
    if port == 465:
        return "tls"
    if port == 587 or username:
        return "starttls"
    return "none"


def _resolve_database(base: Path, url: str) -> str:
    """Make a relative ``sqlite:///file`` URL relative to the config file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(resolve(base, rest))
    return url


def _as_path(base: Path, value: str | Path) -> Path:
    return value if isinstance(value, Path) else resolve(base, value)


def _section(values: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The checked values of ``[section]`` by name, as its dataclass's fields are named."""
    prefix = section + "."
    return {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}


def _mail(values: Mapping[str, Any], base: Path) -> MailConfig:
    fields = _section(values, "mail")
    fields["sender"] = fields.pop("from")  # `from` is a Python keyword
    fields["outbox_dir"] = _as_path(base, fields["outbox_dir"])
    return MailConfig(**fields)


def _smtp(values: Mapping[str, Any]) -> SmtpConfig:
    fields = _section(values, "smtp")
    fields["security"] = fields["security"] or default_security(fields["port"], fields["username"])
    return SmtpConfig(**fields)


def _feeds(values: Mapping[str, Any], base: Path) -> FeedsConfig:
    fields = _section(values, "feeds")
    fields["dir"] = _as_path(base, fields["dir"])
    return FeedsConfig(**fields)


def _mailbox(values: Mapping[str, Any], base: Path) -> MailboxConfig:
    fields = _section(values, "mailbox")
    if fields["path"] is not None:
        fields["path"] = _as_path(base, fields["path"])
    return MailboxConfig(**fields)
