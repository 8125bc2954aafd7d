"""Select: which papers each subscriber gets, as pure functions over plain data.

``query`` (the keyword query language), ``index`` (a paper's folded words), ``match`` (the
day's matcher: queries against papers), ``rank`` (ordering by score, upvotes, title),
``highlight`` (the spans, terms and score of each match), ``diff`` (papers never sent
before), ``similar`` (the similarity ranker: vectors of papers, subscribers' profiles) and
``blend`` (picks by similarity, blended with keyword matches: import these two by name,
they bring numpy and scikit-learn, which the rest does not need), ``library`` (a
reference library's BibTeX or CSL JSON bytes read into entries, with bibtexparser: import
it by name too). Imports only ``digest.models``, ``digest.errors``, ``digest.words``,
``digest.identity``, numpy/scikit-learn and bibtexparser: no database, network, clock or
filesystem.
"""

from digest.select.diff import (
    Selection,
    select,
)
from digest.select.index import index_paper
from digest.select.match import (
    DEFAULT_FIELDS,
    DayMatcher,
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
from digest.select.rank import WEIGHTS

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
