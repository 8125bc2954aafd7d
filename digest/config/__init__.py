"""Config: the one declaration of settings, the TOML loader, subscriber lists.

``settings`` (the declaration of every key and the ``Config`` it loads into), ``checks`` (the
value checks the declarations use), ``table`` (one TOML table checked against its declaration),
``sources`` (``[[sources]]`` and the older ``[source]``: declaration, validation,
:class:`SourceSettings`), ``arxiv_categories`` (the shape of an arXiv category),
``preferences`` (a subscriber's sources, likes and like threshold, checked for the config
and the import), ``subscribers`` (``[[subscribers]]``: declaration and validation), ``load``
(finding, reading and validating the file), ``example`` (``config.example.toml`` from the
declarations), ``roster`` (CSV/JSONL subscriber import and export), ``passwords`` (the
passwords the config names, read from the environment). May import ``select`` (to check
queries) and the bottom layer.
"""

from digest.config.checks import Invalid, normalise_address
from digest.config.example import example_toml
from digest.config.load import find_config, load, parse
from digest.config.settings import SECTIONS, SETTINGS, Config
from digest.config.sources import SOURCE_SETTINGS, SourceSettings
from digest.config.subscribers import SUBSCRIBER_SETTINGS

__all__ = [
    "SECTIONS",
    "SETTINGS",
    "SOURCE_SETTINGS",
    "SUBSCRIBER_SETTINGS",
    "Config",
    "Invalid",
    "SourceSettings",
    "example_toml",
    "find_config",
    "load",
    "normalise_address",
    "parse",
]
