"""The sources of papers: the ``[[sources]]`` list (its declaration, its validation) and the
older single ``[source]`` table, which still reads as one source named after its kind.

::

    [[sources]]
    name = "arxiv-ml"            # unique, [a-z0-9-]+, 1-64 characters
    kind = "arxiv"               # huggingface | arxiv | feed | file
    categories = ["cs.LG", "stat.ML"]

Every problem is reported with its place (``sources[1].categories``) and, for a near miss,
what was most likely meant. Both tables at once, or no enabled source, is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.config.arxiv_categories import check_category
from digest.config.checks import (
    Check,
    Invalid,
    boolean,
    choice,
    http_url,
    integer,
    number,
    optional,
    text,
)
from digest.config.declaration import Setting
from digest.config.table import check_table, show, suggest, unknown_keys
from digest.errors import ConfigProblem

SOURCE_KINDS = ("huggingface", "arxiv", "feed", "file")
#: arXiv's announcement types an ``arxiv`` source may keep (its RSS ``announce_type``).
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
HF_URL = "https://huggingface.co/api/daily_papers"
ARXIV_RSS = "https://rss.arxiv.org/rss/"
ARXIV_API = "https://export.arxiv.org/api/query"
#: arXiv asks for at most one request every 3 seconds (its API terms of use).
ARXIV_MIN_INTERVAL = 3.0
_NAME = re.compile(r"[a-z0-9-]{1,64}")


@dataclass(frozen=True)
class SourceSettings:
    """One configured source. ``url``: the listing of a ``huggingface`` or ``feed`` source;
    ``path``: a ``file`` source's folder or file; ``categories``, ``announce``, ``rss_url``
    and ``api_url``: an ``arxiv`` source's (the defaults otherwise, unused).
    ``min_interval``: seconds between two requests to its host; None: the host's default."""

    name: str
    kind: str
    url: str | None = None
    path: Path | None = None
    categories: tuple[str, ...] = ()
    announce: tuple[str, ...] = ("new", "cross")
    rss_url: str = ARXIV_RSS
    api_url: str = ARXIV_API
    timeout: float = 30.0
    retries: int = 4
    max_bytes: int = 20_000_000
    enabled: bool = True
    min_interval: float | None = None

    def describe(self) -> str:
        """One line on what it reads: ``arxiv-ml: arxiv cs.LG+stat.ML (new, cross)``."""
        if self.kind == "arxiv":
            what = "+".join(self.categories) + f" ({', '.join(self.announce)})"
        else:
            what = str(self.path if self.kind == "file" else self.url)
        return f"{self.name}: {self.kind} {what}" + ("" if self.enabled else " (disabled)")


def source_name() -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            fixed = name_like(value) if isinstance(value, str) else None
            hint = f': did you mean "{fixed}"?' if fixed else ""
            raise Invalid(
                f"expected 1-64 lower-case letters, digits or -, got {show(value)}{hint}",
                quotes_value=True,
            )
        return value

    return check


def name_like(value: str) -> str | None:
    """A valid source name close to ``value`` (``arXiv ML`` -> ``arxiv-ml``), or None."""
    fixed = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:64].strip("-")
    return fixed or None


def categories() -> Check:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise Invalid('expected a list of arXiv categories, such as ["cs.LG", "math.AG"]')
        for item in value:
            try:
                check_category(item)
            except Invalid as exc:
                raise Invalid(str(exc), quotes_value=True) from exc
        return tuple(dict.fromkeys(value))

    return check


def announce() -> Check:
    def check(value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        types = ", ".join(f'"{a}"' for a in ANNOUNCE_TYPES)
        if not isinstance(value, list) or not value:
            raise Invalid(f"expected a list of {types}")
        for item in value:
            if item not in ANNOUNCE_TYPES:
                meant = suggest(item, ANNOUNCE_TYPES) if isinstance(item, str) else None
                raise Invalid(
                    f"{show(item)} is not an announcement type: {meant or 'one of ' + types}",
                    quotes_value=True,
                )
        return tuple(a for a in ANNOUNCE_TYPES if a in value)

    return check


def rss_url() -> Check:
    """The arXiv RSS base URL, ending in ``/`` (the categories are appended to it)."""
    base = http_url(strip=False)

    def check(value: Any) -> str:
        url = str(base(value))
        return url if url.endswith("/") else url + "/"

    return check


#: Every key of one ``[[sources]]`` entry.
SOURCE_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "name",
        source_name(),
        None,
        "unique: lower-case letters, digits and -; shown in emails, status and feeds (required)",
        example="hf",
    ),
    Setting(
        "kind",
        choice(*SOURCE_KINDS),
        None,
        '"huggingface" (the daily papers API), "arxiv" (categories\' announcements), "feed"'
        ' (any RSS or Atom feed) or "file" (local JSON listings) (required)',
        example="huggingface",
    ),
    Setting(
        "url",
        optional(http_url(strip=False)),
        None,
        "huggingface: the API (default " + HF_URL + "); feed: the feed's URL (required)",
        example=HF_URL,
    ),
    Setting(
        "path",
        optional(text()),
        None,
        "file: a folder of YYYY-MM-DD.json listings, or one JSON file (required)",
        path=True,
        example="listings",
    ),
    Setting(
        "categories",
        categories(),
        (),
        'arxiv: archives ("cs") or subject classes ("cs.LG", "math.AG", "hep-th") (required)',
        example=["cs.LG", "cs.CL", "stat.ML"],
    ),
    Setting(
        "announce",
        announce(),
        ("new", "cross"),
        'arxiv: the announcements kept: "new", "cross" (cross-lists), "replace" and'
        ' "replace-cross" (new versions)',
        example=["new", "cross"],
    ),
    Setting(
        "rss_url",
        rss_url(),
        ARXIV_RSS,
        "arxiv: today's announcements come from {rss_url}{cat1+cat2+...}",
    ),
    Setting(
        "api_url",
        http_url(strip=False),
        ARXIV_API,
        "arxiv: the query API, for past days and catch-up",
    ),
    Setting("timeout", number(1, 600), 30.0, "seconds before a request is abandoned"),
    Setting(
        "retries",
        integer(0, 10),
        4,
        "attempts after a timeout, 5xx or 429 before the source fails for this run",
    ),
    Setting(
        "max_bytes",
        integer(1_000, 1_000_000_000),
        20_000_000,
        "a response larger than this is refused",
    ),
    Setting("enabled", boolean(), True, "false: configured but not read"),
    Setting(
        "min_interval",
        optional(number(0, 3600)),
        None,
        "seconds between two requests to the source's host; default: the host's own"
        " (3 for arXiv, which asks for no less)",
        example=3.0,
    ),
)
_KEYS = [s.key for s in SOURCE_SETTINGS]
#: The keys only some kinds take (the others take every key not listed here).
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "url": ("huggingface", "feed"),
    "path": ("file",),
    "categories": ("arxiv",),
    "announce": ("arxiv",),
    "rss_url": ("arxiv",),
    "api_url": ("arxiv",),
}
#: What a kind cannot do without.
_REQUIRED = {"feed": "url", "file": "path", "arxiv": "categories"}

#: The older single ``[source]`` table (its kinds: huggingface and file).
LEGACY_SETTINGS: tuple[Setting, ...] = (
    Setting("source.kind", choice("huggingface", "file"), "huggingface", ""),
    Setting("source.url", http_url(), HF_URL, ""),
    Setting("source.path", optional(text()), None, "", path=True),
    *(
        Setting("source." + s.key, s.check, s.default, "")
        for s in SOURCE_SETTINGS
        if s.key in ("timeout", "retries", "max_bytes")
    ),
)


def parse_sources(
    data: Mapping[str, Any], base: Path, problems: list[ConfigProblem]
) -> tuple[SourceSettings, ...]:
    """The sources of a config document: its ``[[sources]]``, else its ``[source]`` as one
    source named after its kind, else one Hugging Face source named ``huggingface``.

    Every problem is appended to ``problems``; an entry with one is left out.
    """
    if "sources" in data and "source" in data:
        problems.append(
            ConfigProblem(
                "source",
                "both [source] and [[sources]]: a config has one or the other",
                hint="move [source]'s keys into a [[sources]] entry (with name and kind) and"
                " delete [source]",
            )
        )
        return ()
    if "sources" not in data:
        legacy = _legacy(data.get("source", {}), base, problems)
        return (legacy,) if legacy else ()
    raw = data["sources"]
    if not isinstance(raw, list):
        problems.append(ConfigProblem("sources", "expected [[sources]] tables"))
        return ()
    found: list[SourceSettings] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        source = _entry(i, entry, base, problems)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in seen:
            problems.append(
                ConfigProblem(
                    f"sources[{i}].name",
                    f"duplicate source {show(name)} (also sources[{seen[name]}])",
                    hint="each source needs its own name",
                )
            )
            continue
        if isinstance(name, str):
            seen[name] = i
        if source is not None:
            found.append(source)
    if not any(isinstance(e, dict) and e.get("enabled", True) is not False for e in raw):
        problems.append(
            ConfigProblem(
                "sources",
                "no enabled source: a run would have nothing to read",
                hint="add a [[sources]] entry, or set enabled = true on one",
            )
        )
    return tuple(found)


def source_names(data: Mapping[str, Any]) -> list[str] | None:
    """The source names a subscriber may choose from, read from the raw document (a source
    with a bad value still counts); None when the document is too broken to tell."""
    if "sources" not in data:
        table = data.get("source", {})
        kind = table.get("kind", "huggingface") if isinstance(table, dict) else None
        return [kind] if isinstance(kind, str) else None
    if "source" in data or not isinstance(data["sources"], list):
        return None
    names = [e.get("name") for e in data["sources"] if isinstance(e, dict)]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and _NAME.fullmatch(n)))


def _entry(i: int, entry: Any, base: Path, problems: list[ConfigProblem]) -> SourceSettings | None:
    where = f"sources[{i}]."
    if not isinstance(entry, dict):
        problems.append(ConfigProblem(f"sources[{i}]", "expected a table"))
        return None
    before = len(problems)
    problems.extend(unknown_keys(entry, _KEYS, where))
    kind = entry.get("kind")
    for key in ("name", "kind"):
        if key not in entry:
            problems.append(_missing(where, key, kind))
    values = check_table(entry, SOURCE_SETTINGS, where, problems, base)
    if kind in SOURCE_KINDS:
        problems.extend(_kind_problems(where, kind, entry, values))
    if len(problems) > before:
        return None
    if kind == "huggingface":
        values["url"] = (values["url"] or HF_URL).rstrip("/")
    return SourceSettings(**values)


def _missing(where: str, key: str, kind: object) -> ConfigProblem:
    if key == "kind":
        hint = "one of " + ", ".join(f'"{k}"' for k in SOURCE_KINDS)
    else:
        hint = f'such as name = "{kind if isinstance(kind, str) else "papers"}"'
    return ConfigProblem(where + key, "missing: every source needs one", hint=hint)


def _kind_problems(
    where: str, kind: str, entry: Mapping[str, Any], values: Mapping[str, Any]
) -> list[ConfigProblem]:
    """Keys of another kind, what this kind requires, arXiv's request interval."""
    problems: list[ConfigProblem] = []
    takes = [k for k in _KEYS if kind in KIND_KEYS.get(k, (kind,))]
    for key in entry:
        if key in KIND_KEYS and kind not in KIND_KEYS[key]:
            kinds = " or ".join(f'"{k}"' for k in KIND_KEYS[key])
            problems.append(
                ConfigProblem(
                    where + key,
                    f'not a key of kind = "{kind}" sources (it is for {kinds})',
                    hint=f'kind = "{kind}" takes: {", ".join(takes)}',
                )
            )
    required = _REQUIRED.get(kind)
    if required and required not in entry:
        problems.append(ConfigProblem(where + required, f'required when kind = "{kind}"'))
    interval = values.get("min_interval")
    if kind == "arxiv" and interval is not None and interval < ARXIV_MIN_INTERVAL:
        hosts = [urlsplit(str(values.get(k) or "")).hostname or "" for k in ("rss_url", "api_url")]
        if any(h == "arxiv.org" or h.endswith(".arxiv.org") for h in hosts):
            problems.append(
                ConfigProblem(
                    where + "min_interval",
                    f"arXiv asks for at most one request every {ARXIV_MIN_INTERVAL:g} seconds,"
                    f" got {show(entry['min_interval'])}",
                    hint=f"leave it out for arXiv's {ARXIV_MIN_INTERVAL:g}, or make it larger",
                )
            )
    return problems


def _legacy(table: Any, base: Path, problems: list[ConfigProblem]) -> SourceSettings | None:
    """The old ``[source]`` table as one source named after its kind."""
    if not isinstance(table, dict):
        problems.append(ConfigProblem("source", f"expected a table [source], got {show(table)}"))
        return None
    names = [s.key.removeprefix("source.") for s in LEGACY_SETTINGS]
    before = len(problems)
    problems.extend(unknown_keys(table, names, "source."))
    if table.get("kind") in ("arxiv", "feed"):  # kinds only the [[sources]] list has
        problems.append(
            ConfigProblem(
                "source.kind",
                f"{show(table['kind'])} sources are configured in the [[sources]] list",
                hint="replace [source] by [[sources]] entries, each with a name and a kind",
            )
        )
        table = {k: v for k, v in table.items() if k != "kind"}
    values = check_table(table, LEGACY_SETTINGS, "source.", problems, base)
    if values.get("kind") == "file" and "path" not in table:
        problems.append(ConfigProblem("source.path", 'required when source.kind = "file"'))
    if len(problems) > before:
        return None
    kind = values["kind"]
    return SourceSettings(
        name=kind,
        kind=kind,
        url=values["url"] if kind == "huggingface" else None,
        path=values["path"],
        timeout=values["timeout"],
        retries=values["retries"],
        max_bytes=values["max_bytes"],
    )
