"""A strict reader of the Prometheus text exposition format (version 0.0.4), for tests.

It refuses what Prometheus would refuse or warn about: a sample before its family's
``# TYPE``, a family described twice, an unknown type, a counter not named ``*_total``, a
bad metric or label name, a badly escaped label value, a value that is not a number, a
series given twice, a missing final newline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{(?:{_LABEL}(?:,{_LABEL})*)?\}})? (\S+)(?: (-?\d+))?$")
_ONE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


@dataclass
class Family:
    name: str
    help: str = ""
    type: str = ""
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)


class BadExposition(ValueError):
    pass


def parse(text: str) -> dict[str, Family]:
    """The families of ``text`` by name; raises :class:`BadExposition` with the line."""
    if text and not text.endswith("\n"):
        raise BadExposition("no newline at the end")
    families: dict[str, Family] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            _line(line, families)
        except BadExposition as exc:
            raise BadExposition(f"line {number}: {exc}: {line!r}") from None
    return families


def _line(line: str, families: dict[str, Family]) -> None:
    if not line.strip():
        return
    if line.startswith("#"):
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
            return  # a comment
        if not re.fullmatch(_NAME, parts[2]):
            raise BadExposition("bad metric name")
        family = families.setdefault(parts[2], Family(parts[2]))
        text = parts[3] if len(parts) == 4 else ""
        if parts[1] == "HELP":
            if family.help or family.samples:
                raise BadExposition("HELP twice or after samples")
            family.help = text or "-"
        else:
            if family.type or family.samples:
                raise BadExposition("TYPE twice or after samples")
            if text not in TYPES:
                raise BadExposition("unknown type")
            if text == "counter" and not family.name.endswith("_total"):
                raise BadExposition("a counter not named *_total")
            family.type = text
        return
    m = _SAMPLE.match(line)
    if not m:
        raise BadExposition("not a sample")
    name, labels, value = m.group(1), m.group(2) or "", m.group(3)
    sampled = families.get(name)
    if sampled is None or not sampled.type:
        raise BadExposition("a sample without its TYPE before it")
    try:
        number = float(value)
    except ValueError:
        raise BadExposition("not a number") from None
    if sampled.type == "counter" and (number < 0 or math.isnan(number)):
        raise BadExposition("a counter below zero")
    key = tuple(sorted(_ONE_LABEL.findall(labels)))
    if key in sampled.samples:
        raise BadExposition("a series twice")
    sampled.samples[key] = number
