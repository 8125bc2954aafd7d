"""The keyword query language: a query string in, a tree of frozen nodes out.

Grammar (``NOT``/``-`` bind tightest, then ``AND``, then ``OR``)::

    query   := or EOF
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*            # side by side means AND
    unary   := ("NOT" | "-") unary | FIELD unary | primary
    primary := "(" or ")" | PHRASE | TERM
    FIELD   := ("title" | "abstract" | "author") ":"   # any case; spaces may follow
    PHRASE  := '"' text '"'                        # a trailing * on its last word: prefix
    TERM    := run of characters other than white space, ( ) and "   # trailing *: prefix

``AND``, ``OR`` and ``NOT`` are operators only in upper case and standing alone; a ``-``
is ``NOT`` at the start of a term. A term or phrase stands for its words (see
:mod:`digest.words`): one word is a :class:`Term` (or :class:`Prefix`), several are a
:class:`Phrase`, so ``GPT-4`` and ``"foo:bar"`` are phrases.

A field that does not exist is an error with a suggestion, not a phrase that matches
nothing (:func:`unknown_field`): a term that starts with two or more ASCII letters and a
colon, followed by a letter, ``(``, ``"``, ``-`` or ``*`` (``tilte:diffusion``,
``foo:bar``, ``tilte:(a OR b)``), or by a space or the end when the letters are a likely
misspelling of a field (``tilte: diffusion``). Colons stay text elsewhere: in quotes
(``"foo:bar"``), after a non-letter (``C++:``), before ``/``, ``:`` or a digit
(``https://…``, ``std::vector``, ``arXiv:2503.01234``, ``10:30``), and in a word followed
by a space (``LLaMA: open``). Sample::

    parse('title:"mixture of experts" OR agent* -survey')
    == Or((Field("title", Phrase(("mixture", "of", "experts"))),
           And((Prefix("agent"), Not(Term("survey"))))))
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from digest.errors import QueryError
from digest.words import words

#: The fields a term can be restricted to; without one, a term looks in title and abstract.
FIELDS = ("title", "abstract", "author")
#: Deeper nesting than this is refused, so no query can exhaust the stack.
MAX_DEPTH = 64

_FIELD = re.compile(r"(title|abstract|author):", re.IGNORECASE)
# What would be a field if it were one (see the module docstring and unknown_field).
_FIELD_LIKE = re.compile(r"([A-Za-z]{2,}):")
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_ENDS_IN_WORD = re.compile(r"[^\W_]\**$")


@dataclass(frozen=True, slots=True)
class Term:
    """One folded word; also matches it with a trailing ``s``/``es`` added or removed."""

    word: str


@dataclass(frozen=True, slots=True)
class Prefix:
    """Any word starting with the folded ``stem`` (written ``stem*``)."""

    stem: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """Two or more folded words, consecutive in one field.

    The last word follows the plural rule of :class:`Term`, or is a prefix when ``prefix``.
    """

    words: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Field:
    """``operand`` looks only in ``name`` (one of :data:`FIELDS`); the innermost field wins."""

    name: str
    operand: Node


Node: TypeAlias = Term | Prefix | Phrase | Not | And | Or | Field
Leaf: TypeAlias = Term | Prefix | Phrase


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "-", "field", "term", "phrase"
    pos: int
    text: str = ""


def _leaf(query: str, raw: str, pos: int, what: str) -> Leaf:
    """The node for the words of ``raw`` (a term or a phrase's inside)."""
    raw = raw.rstrip()
    prefix = raw.endswith("*") and _ENDS_IN_WORD.search(raw) is not None
    found = words(raw.rstrip("*") if prefix else raw)
    if not found:
        raise QueryError(query, pos, f"{what} has no letters or digits")
    if len(found) > 1:
        return Phrase(tuple(found), prefix)
    return Prefix(found[0]) if prefix else Term(found[0])


def unknown_field(query: str, at: int) -> QueryError | None:
    """The error for a term at ``at`` of ``query`` that starts with a field that does not
    exist (``tilte:diffusion``, ``foo:bar``; see the module docstring), else None.

    The reason names the field and the closest real one when there is one; the hint lists
    the fields and how to search for the text itself (in quotes).
    """
    found = _FIELD_LIKE.match(query, at)
    if found is None:
        return None
    name = found.group(1)
    after = query[found.end() : found.end() + 1]
    close = difflib.get_close_matches(name.lower(), FIELDS, n=1, cutoff=0.7)
    if after.isalpha() or (after and after in '("*-'):
        pass  # an operand follows, as after a field: "tilte:diffusion", "foo:(a OR b)"
    elif not close or not (after == "" or after.isspace() or after == ")"):
        return None  # "LLaMA: open", "https://", "std::", "arXiv:2503": text, as before
    reason = f"unknown field {name}:"
    reason += f", did you mean {close[0]}:?" if close else f" (the fields are {_NAMES})"
    end = at + len(name) + 1
    while end < len(query) and not query[end].isspace() and query[end] not in '()"':
        end += 1
    words = query[at:end] if end > at + len(name) + 1 else name + ":"
    hint = f'the fields are {_NAMES}; for the words themselves, quote them: "{words}"'
    return QueryError(query, at, reason, hint=hint)


_NAMES = ", ".join(f"{name}:" for name in FIELDS)


def _tokens(query: str, strict: bool) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(query)
    glued = False  # right after "-" or "field:": no operator keyword here
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
            glued = False
            continue
        if c in "()":
            out.append(_Token(c, i))
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError(query, i, "unclosed quote")
            out.append(_Token("phrase", i, query[i + 1 : end]))
            i = end + 1
        else:
            j = i
            while j < n and query[j] not in '()"' and not query[j].isspace():
                j += 1
            run = query[i:j]
            field = _FIELD.match(run)
            if run[0] == "-" and (len(run) > 1 or (j < n and query[j] in '("')):
                out.append(_Token("-", i))
                i += 1
                glued = True
                continue
            if field:
                out.append(_Token("field", i, field.group(1).lower()))
                i += field.end()
                glued = True
                continue
            if strict and (error := unknown_field(query, i)):
                raise error
            if run in _OPERATORS and not glued:
                out.append(_Token(run, i))
            else:
                out.append(_Token("term", i, run))
            i = j
        glued = False
    return out


class _Parser:
    def __init__(self, query: str, strict: bool) -> None:
        self.query = query
        self.tokens = _tokens(query, strict)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def fail(self, pos: int, reason: str) -> QueryError:
        return QueryError(self.query, pos, reason)

    def parse(self) -> Node:
        if not self.tokens:
            raise self.fail(0, "empty query")
        node = self.or_()
        tok = self.peek()
        if tok is not None:  # only a stray ")" can stop the loops early
            raise self.fail(tok.pos, "unmatched ')'")
        return node

    def or_(self) -> Node:
        operands = [self.and_()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            self.expect_operand(tok)
            operands.append(self.and_())
        return _join(Or, operands)

    def and_(self) -> Node:
        operands = [self.unary()]
        while (tok := self.peek()) is not None and tok.kind not in ("OR", ")"):
            if tok.kind == "AND":
                self.i += 1
                operands.append(self.operand_of(tok))
            else:
                operands.append(self.unary())
        return _join(And, operands)

    def expect_operand(self, op: _Token) -> None:
        """Fail, pointing at operator ``op``, unless an operand comes next."""
        tok = self.peek()
        if tok is None or tok.kind in ("AND", "OR", ")"):
            name = f"{op.text}:" if op.kind == "field" else op.kind
            raise self.fail(op.pos, f"{name} must be followed by a term, phrase or group")

    def operand_of(self, op: _Token) -> Node:
        """The unary operand after operator ``op``."""
        self.expect_operand(op)
        return self.unary()

    def unary(self) -> Node:
        tok = self.peek()
        assert tok is not None  # callers check
        if tok.kind in ("AND", "OR"):
            raise self.fail(tok.pos, f"{tok.kind} must come between two terms")
        if tok.kind in ("phrase", "term"):
            self.i += 1
            return _leaf(self.query, tok.text, tok.pos, tok.kind)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(tok.pos, "query nested too deeply")
        self.i += 1
        node: Node
        if tok.kind in ("NOT", "-"):
            node = Not(self.operand_of(tok))
        elif tok.kind == "field":
            node = Field(tok.text, self.operand_of(tok))
        elif tok.kind == "(":
            nxt = self.peek()
            if nxt is None:
                raise self.fail(tok.pos, "unclosed parenthesis")
            if nxt.kind == ")":
                raise self.fail(tok.pos, "empty parentheses")
            node = self.or_()
            close = self.peek()
            if close is None or close.kind != ")":
                raise self.fail(tok.pos, "unclosed parenthesis")
            self.i += 1
        else:
            raise self.fail(tok.pos, "unmatched ')'")
        self.depth -= 1
        return node


def _join(kind: type[And] | type[Or], operands: list[Node]) -> Node:
    if len(operands) == 1:
        return operands[0]
    flat: list[Node] = []
    for op in operands:
        flat.extend(op.operands if isinstance(op, kind) else (op,))
    return kind(tuple(flat))


@lru_cache(maxsize=65536)
def parse(text: str, *, strict: bool = True) -> Node:
    """The tree of query ``text``; raises :class:`QueryError` (with position) when invalid.

    ``strict=False`` reads a field that does not exist (``foo:bar``) as the phrase of its
    words, as before such fields were refused: for queries stored back then, so that one
    of them never stops a run. Every query that comes in is checked strictly.
    Results are cached by text, so each distinct query is compiled once per process.
    """
    return _Parser(text, strict).parse()


def validate(text: str) -> None:
    """Raise :class:`QueryError` when ``text`` is not a valid query (a field that does not
    exist included: the error has a ``hint``)."""
    parse(text)


def to_text(node: Node) -> str:
    """A query string that parses back to ``node`` (canonical spelling, for display)."""
    if isinstance(node, Term):
        return node.word
    if isinstance(node, Prefix):
        return node.stem + "*"
    if isinstance(node, Phrase):
        return '"' + " ".join(node.words) + ("*" if node.prefix else "") + '"'
    if isinstance(node, Not):
        return "NOT " + _wrapped(node.operand, (And, Or))
    if isinstance(node, Field):
        return node.name + ":" + _wrapped(node.operand, (And, Or, Not))
    if isinstance(node, And):
        return " ".join(_wrapped(op, (Or,)) for op in node.operands)
    return " OR ".join(_wrapped(op, ()) for op in node.operands)


def _wrapped(node: Node, kinds: tuple[type, ...]) -> str:
    text = to_text(node)
    return f"({text})" if isinstance(node, kinds) else text


def leaves(node: Node) -> list[Leaf]:
    """The terms, prefixes and phrases of ``node``, in order."""
    if isinstance(node, Term | Prefix | Phrase):
        return [node]
    if isinstance(node, Not | Field):
        return leaves(node.operand)
    return [leaf for op in node.operands for leaf in leaves(op)]


__all__ = [
    "FIELDS",
    "And",
    "Field",
    "Leaf",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Term",
    "leaves",
    "parse",
    "to_text",
    "unknown_field",
    "validate",
]
