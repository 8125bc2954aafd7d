"""Config: the one declaration of settings, the TOML loader, subscriber lists.

``settings`` (declaration, loading, validation, the example file), ``roster`` (CSV/JSONL
subscriber import and export). May import ``select`` (to check queries) and the bottom layer.
"""

from digest.config.settings import (
    SECTIONS,
    SETTINGS,
    SUBSCRIBER_SETTINGS,
    Config,
    Invalid,
    example_toml,
    find_config,
    load,
    normalise_address,
    parse,
)

__all__ = [
    "SECTIONS",
    "SETTINGS",
    "SUBSCRIBER_SETTINGS",
    "Config",
    "Invalid",
    "example_toml",
    "find_config",
    "load",
    "normalise_address",
    "parse",
]
