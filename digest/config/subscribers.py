"""The ``[[subscribers]]`` entries of a config file: their declaration and their validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digest.config.checks import (
    address,
    choice,
    integer,
    number,
    optional,
    queries,
    schedule_field,
    text,
    time_of_day,
    zone,
)
from digest.config.declaration import Setting
from digest.config.preferences import like_list, source_list, unknown_sources
from digest.config.table import check_table, show, unknown_keys
from digest.errors import ConfigProblem
from digest.models import ABSTRACT_MODES, Subscriber
from digest.schedule import check_days, check_frequency, check_weekday

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
        "abstract",
        optional(choice(*ABSTRACT_MODES)),
        None,
        'how much of each abstract: "full", "short" or "none"; default mail.abstract',
        example="short",
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
    Setting(
        "sources",
        optional(source_list()),
        None,
        "names of the [[sources]] whose papers they get; default every source",
        example=["hf"],
    ),
    Setting(
        "like",
        like_list(),
        (),
        "papers they like (arXiv ids, arxiv.org links, DOIs), added to their likes: papers"
        " similar to these are picked for them; taking one out unlikes it, unless they"
        " liked it themselves too",
        example=["2503.01234", "https://arxiv.org/abs/2502.04321v2"],
    ),
    Setting(
        "like_threshold",
        optional(number(0, 1)),
        None,
        "how similar (0-1) to a liked paper a paper must be to be picked; default"
        " mail.like_threshold",
        example=0.2,
    ),
)
_NAMES = [s.key for s in SUBSCRIBER_SETTINGS]


def parse_subscribers(
    raw: Any, base: Path, problems: list[ConfigProblem], *, sources: Sequence[str] | None = None
) -> tuple[Subscriber, ...]:
    """The valid subscribers of a ``[[subscribers]]`` array, one per address.

    Every problem (bad value, unknown or missing key, duplicate address, a source not among
    ``sources``: the configured names, None: not checked) is appended to ``problems``; an
    entry with one is left out.
    """
    if not isinstance(raw, list):
        problems.append(ConfigProblem("subscribers", "expected [[subscribers]] tables"))
        return ()
    subscribers: list[Subscriber] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        sub = _parse_entry(i, entry, base, problems, sources)
        if sub is None:
            continue
        if sub.email in seen:
            problems.append(
                ConfigProblem(f"subscribers[{i}].email", f"duplicate subscriber {show(sub.email)}")
            )
            continue
        seen.add(sub.email)
        subscribers.append(sub)
    return tuple(subscribers)


def _parse_entry(
    i: int, entry: Any, base: Path, problems: list[ConfigProblem], known: Sequence[str] | None
) -> Subscriber | None:
    where = f"subscribers[{i}]."
    if not isinstance(entry, dict):
        problems.append(ConfigProblem(f"subscribers[{i}]", "expected a table"))
        return None
    problems.extend(unknown_keys(entry, _NAMES, where))
    if "email" not in entry:
        problems.append(ConfigProblem(where + "email", "missing: every subscriber needs one"))
        return None
    before = len(problems)
    sub = check_table(entry, SUBSCRIBER_SETTINGS, where, problems, base)
    if known is not None and sub.get("sources"):
        for name, hint in unknown_sources(sub["sources"], known):
            problems.append(ConfigProblem(where + "sources", f"no source {show(name)}", hint=hint))
    if len(problems) > before:
        return None
    return Subscriber(**sub)
