"""One declared configuration key (:class:`Setting`): the shape of every entry of
:data:`digest.config.settings.SETTINGS` and of the declarations it gathers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digest.config.checks import Check


@dataclass(frozen=True)
class Setting:
    """One configuration key: dotted name, how to check it, its default and its help."""

    key: str
    check: Check
    default: Any
    help: str
    path: bool = False  # a filesystem path, relative to the config file
    example: Any = None  # value shown in config.example.toml, when not the default
