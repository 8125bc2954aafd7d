"""Select: which papers each subscriber gets, as pure functions over plain data.

``query`` (the keyword query language), ``match`` (the day's matcher: queries against papers,
highlights), ``diff`` (papers never sent before). Imports only ``digest.models``,
``digest.errors`` and ``digest.words``: no database, network, clock or filesystem.
"""

from digest.select.diff import (
    Selection,
    select,
)
from digest.select.match import (
    DEFAULT_FIELDS,
    WEIGHTS,
    DayMatcher,
    index_paper,
    match_paper,
    plural_variants,
)
from digest.select.query import (
    MAX_DEPTH,
    And,
    Field,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
    leaves,
    parse,
    to_text,
    validate,
)

__all__ = [
    "DEFAULT_FIELDS",
    "MAX_DEPTH",
    "WEIGHTS",
    "And",
    "DayMatcher",
    "Field",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Selection",
    "Term",
    "index_paper",
    "leaves",
    "match_paper",
    "parse",
    "plural_variants",
    "select",
    "to_text",
    "validate",
]
