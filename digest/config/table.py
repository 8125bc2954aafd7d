"""One TOML table checked against its declared settings: defaults filled in, bad values and
unknown keys reported as problems (with the closest valid key), paths made absolute."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from digest.config.checks import Invalid
from digest.config.declaration import Setting
from digest.errors import ConfigProblem


def show(value: object) -> str:
    """A raw value as the config file would spell it, for a problem's message."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def suggest(key: str, valid: Sequence[str]) -> str | None:
    """``did you mean "…"?`` naming the valid key closest to ``key``, if one is close."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None


def unknown_keys(keys: Iterable[str], valid: Sequence[str], prefix: str) -> list[ConfigProblem]:
    """A problem for each of ``keys`` not in ``valid``, suggesting the closest valid one."""
    return [
        ConfigProblem(prefix + key, "unknown key", hint=suggest(key, valid))
        for key in keys
        if key not in valid
    ]


def resolve(base: Path, value: str) -> Path:
    """``value`` as an absolute path, relative to ``base`` (the config file's folder)."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def check_table(
    data: Mapping[str, Any],
    settings: Sequence[Setting],
    prefix: str,
    problems: list[ConfigProblem],
    base: Path,
) -> dict[str, Any]:
    """Each setting's value (its default when absent), by key without ``prefix``.

    A value that fails its check is left out and appended to ``problems``.
    """
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
            said = str(exc) if exc.quotes_value else f"{exc}, got {show(raw)}"
            problems.append(ConfigProblem(prefix + name, said, raw))
            continue
        if setting.path and isinstance(value, str):
            value = resolve(base, value)
        values[name] = value
    return values
