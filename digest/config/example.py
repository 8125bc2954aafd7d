"""``config.example.toml``: every setting, its help and its default, from the declarations."""

from __future__ import annotations

import json
from typing import Any

from digest.config.settings import SECTIONS, SETTINGS, Setting
from digest.config.sources import SOURCE_SETTINGS
from digest.config.subscribers import SUBSCRIBER_SETTINGS

#: The commented ``[[sources]]`` of the example: one of each kind, every key shown once.
EXAMPLE_SOURCES: tuple[dict[str, Any], ...] = (
    {"name": "hf", "kind": "huggingface", "url": None, "timeout": None, "retries": None},
    {
        "name": "arxiv-ml",
        "kind": "arxiv",
        "categories": None,
        "announce": None,
        "rss_url": None,
        "api_url": None,
        "min_interval": None,
        "max_bytes": None,
    },
    {"name": "neuro", "kind": "feed", "url": "https://example.org/neuroscience.rss"},
    {"name": "local", "kind": "file", "path": None, "enabled": False},
)


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
            emit(s, s.key, commented=s.key == "user_agent")  # the default names mail.from
    lines += ["", *_sources()]
    for section in SECTIONS:
        lines.append("")
        commented = section in ("smtp", "mailbox")
        if section == "smtp":
            lines.append(
                "# Uncomment [smtp] to send real mail; without it mail goes to the outbox."
            )
        if section == "mailbox":
            lines.append(
                "# Uncomment [mailbox] (and set mail.bounce_address) to act on bounces,"
                " complaints and mailto unsubscribes: `digest mailbox`."
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
        emit(s, s.key, commented=s.key == "sources")  # names only [[sources]] can give
    return "\n".join(lines) + "\n"


def _sources() -> list[str]:
    """The commented ``[[sources]]`` list: what each key means, then one source per kind."""
    lines = [
        "# The sources of papers, read side by side: a paper several of them list is one paper,",
        '# sent once. Without [[sources]]: one Hugging Face source named "huggingface". An',
        "# older config's single [source] table (kind, url, path, timeout, retries, max_bytes)",
        "# still works: one source named after its kind. The keys of a source:",
    ]
    declared = {s.key: s for s in SOURCE_SETTINGS}
    for s in SOURCE_SETTINGS:
        default = "" if s.default in (None, ()) else f" (default {_toml_value(s.default)})"
        lines.append(f"#   {s.key}: {s.help}{default}")
    for entry in EXAMPLE_SOURCES:
        lines += ["#", "# [[sources]]"]
        for key, given in entry.items():
            s = declared[key]
            value = (
                given if given is not None else s.example if s.example is not None else s.default
            )
            lines.append(f"# {key} = {_toml_value(value)}")
    return lines


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
