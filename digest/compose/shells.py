"""The digest shell (``email/digest.*``) around the entries: rendered, CSS-inlined once and
shared by every subscriber whose shell differs only in text, when the template's syntax tree
shows it only prints that text (:func:`prints_only`); cut at its slots, filled per subscriber.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

import css_inline
from jinja2 import Environment, TemplateError, nodes
from markupsafe import escape

from digest.compose.cache import Cache
from digest.compose.fragments import Render
from digest.compose.message import Body, quoted_printable
from digest.compose.templates import TEMPLATES, template_source
from digest.compose.views import DigestContext
from digest.errors import RenderError


@dataclass(frozen=True, slots=True)
class Shell:
    """A rendered shell cut at its slots, quoted-printable: ``encoded[i]`` is the literal
    before ``slots[i]`` (the last one follows every slot), each before a slot ending with a
    line break; ``size`` the bytes of them all."""

    slots: tuple[str, ...]
    encoded: tuple[bytes, ...]
    size: int


#: A line (or run of lines) of a shared shell holding placeholders: text and, at odd
#: places, the index of the value that goes there.
Line = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Form:
    """A shared shell cut once: each literal as encoded runs of lines holding no
    placeholder (bytes) and lines to fill per subscriber and encode (:data:`Line`);
    ``fallback``, when not empty, is the shared rendering, to fill and inline per
    subscriber instead (its placeholders did not survive CSS inlining)."""

    slots: tuple[str, ...]
    literals: tuple[tuple[bytes | Line, ...], ...]
    escaped: bool  #: the values go in escaped (an autoescaped template)
    fallback: str = ""

    def fill(self, values: Sequence[str]) -> Shell:
        """The shell of one subscriber: ``values`` (escaped when :attr:`escaped`) in
        their places, each filled line encoded (quoted-printable is line-local: runs of
        whole lines encoded apart and joined are the whole encoded)."""
        encoded: list[bytes] = []
        for pieces in self.literals:
            chunks: list[bytes] = []
            for piece in pieces:
                if isinstance(piece, bytes):
                    chunks.append(piece)
                else:
                    parts = list(piece)
                    parts[1::2] = [values[i] for i in piece[1::2]]  # type: ignore[index]
                    chunks.append(quoted_printable("".join(parts)))  # type: ignore[arg-type]
            encoded.append(b"".join(chunks))
        return Shell(self.slots, tuple(encoded), sum(map(len, encoded)))


class Count(int):
    """A count that prints as a placeholder (``str``) and is itself in every other use:
    compared or tested, a template's output depends on its value as it would."""

    token: str

    def __new__(cls, value: int, token: str) -> Count:
        count = super().__new__(cls, value)
        count.token = token
        return count

    def __str__(self) -> str:
        return self.token


#: The shell's per-subscriber text (see :meth:`Shells.html`); tuples hold one each.
SHELL_TEXT = (
    "subject",
    "preheader",
    "subscriber_email",
    "subscriber_name",
    "unsubscribe_url",
    "manage_url",
    "feed_url",
    "more_url",
    "browser_url",
)
SHELL_LISTS = ("keywords", "exclude")
#: The shell's counts: printed, compared or tested, they may stand as placeholders while the
#: shell is inlined (see :meth:`Shells.html`).
SHELL_COUNTS = (
    "total_in_listing",
    "matched_count",
    "shown_count",
    "compact_count",
    "more_count",
    "max_papers",
)
#: Nodes that take a template's names where this module cannot follow them.
_OPAQUE = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.EvalContextModifier,
)


def prints_only(
    env: Environment,
    name: str,
    source: str | None,
    texts: Iterable[str],
    lists: Iterable[str],
    numbers: Iterable[str] = (),
) -> bool:
    """Whether template ``name`` only prints the values ``texts`` and the items of ``lists``
    (``{{ v }}``, ``{% for q in l %}…{{ q }}``, ``{{ l|join(", ") }}``) or tests their truth
    (``{% if v %}``, ``… if v else …``, ``{% if a and not v %}``), and only prints, tests or
    compares ``numbers`` (``{% if n == 1 %}``): then its output for any such values is its
    output for placeholders with the values (escaped, if it is autoescaped: see
    :func:`escapes`) put in their place (numbers compare as themselves, see :class:`Count`).
    ``source``: the template's text (None: it could not be read)."""
    tree = _parsed(env, source)
    if tree is None or any(True for _ in tree.find_all(_OPAQUE)):
        return False
    lists = set(lists)
    watched = set(texts) | lists
    loops = [
        loop
        for loop in tree.find_all(nodes.For)
        if isinstance(loop.iter, nodes.Name) and loop.iter.name in lists
    ]
    for loop in loops:
        if not isinstance(loop.target, nodes.Name):
            return False
        watched.add(loop.target.name)
    return _only_printed(tree, None, _Watched(watched, lists, set(numbers), loops))


def escapes(env: Environment, name: str) -> bool:
    """Whether template ``name`` is autoescaped."""
    return bool(env.autoescape(name) if callable(env.autoescape) else env.autoescape)


#: Filters that look up other filters, tests or attributes by name, or draw at random.
_UNCLEAR_FILTERS = frozenset(
    ("random", "attr", "map", "select", "reject", "selectattr", "rejectattr")
)


def pure(env: Environment, source: str | None) -> bool:
    """Whether a template's output depends on nothing but its context's values: it calls
    nothing but ``range``, ``loop.cycle`` and ``loop.changed``, reads attributes and items of
    ``loop`` alone (a value's method, ``day.today``, could read the clock) and uses no filter
    that draws at random or looks something up by name. Then two equal contexts render the
    same, and a rendering may be kept by its context."""
    tree = _parsed(env, source)
    if tree is None or any(True for _ in tree.find_all(_OPAQUE)):
        return False
    kinds = (nodes.Call, nodes.Getattr, nodes.Getitem, nodes.Filter)
    return all(_pure_node(node) for node in tree.find_all(kinds))


def _pure_node(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Filter):
        return node.name not in _UNCLEAR_FILTERS
    if isinstance(node, nodes.Call):
        callee = node.node
        if isinstance(callee, nodes.Name):
            return callee.name == "range"
        return isinstance(callee, nodes.Getattr) and callee.attr in ("cycle", "changed")
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return isinstance(node.node, nodes.Name) and node.node.name == "loop"
    return True


def _parsed(env: Environment, source: str | None) -> nodes.Template | None:
    if source is None:
        return None
    try:
        return env.parse(source)
    except TemplateError:
        return None


@dataclass(frozen=True, slots=True)
class _Watched:
    names: set[str]  #: printed or tested only
    lists: set[str]  #: may be joined too
    numbers: set[str]  #: may be compared too
    loops: list[nodes.For]  #: over a list: their targets are watched names


def _only_printed(
    node: nodes.Node, parent: nodes.Node | None, watched: _Watched, test: bool = False
) -> bool:
    """``test``: ``node``'s truth is all that is used of it (an ``if``'s test, under
    ``not``, or an ``and``/``or`` that is itself a test)."""
    joined = isinstance(node, nodes.Filter) and isinstance(node.node, nodes.Name)
    if joined and node.node.name in watched.lists:  # type: ignore[attr-defined]
        # A list joined: only printed, by a constant.
        return isinstance(parent, nodes.Output) and _constant_join(node)  # type: ignore[arg-type]
    if isinstance(node, nodes.Name) and node.name in watched.names | watched.numbers:
        if node.ctx != "load":  # assigned: only as the target of a loop over a list
            if not any(node is loop.target for loop in watched.loops):
                return False
        elif not (
            test
            or isinstance(parent, nodes.Output)
            or any(parent is loop and loop.iter is node for loop in watched.loops)
            or (node.name in watched.numbers and isinstance(parent, nodes.Compare | nodes.Operand))
        ):
            return False
    for child in node.iter_child_nodes():
        tested = (
            (isinstance(node, nodes.If | nodes.CondExpr) and child is node.test)
            or isinstance(node, nodes.Not)
            or (test and isinstance(node, nodes.And | nodes.Or))
        )
        if not _only_printed(child, node, watched, tested):
            return False
    return True


def _constant_join(node: nodes.Filter) -> bool:
    """Whether ``node`` is ``…|join`` or ``…|join("constant")``."""
    return (
        node.name == "join"
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
        and len(node.args) <= 1
        and all(isinstance(a, nodes.Const) and isinstance(a.value, str) for a in node.args)
    )


def _fill(text: str, values: Iterable[tuple[str, str]]) -> str:
    """``text`` with each placeholder replaced by its value."""
    for token, value in values:
        text = text.replace(token, value)
    return text


#: DigestContext's fields in order, read at once; where the per-subscriber ones are.
_FIELDS = tuple(f.name for f in fields(DigestContext))
_ALL = attrgetter(*_FIELDS)
_TEXT_AT = tuple(_FIELDS.index(name) for name in SHELL_TEXT)
_LISTS_AT = tuple(_FIELDS.index(name) for name in SHELL_LISTS)
_COUNTS_AT = tuple(_FIELDS.index(name) for name in SHELL_COUNTS)


class Shells:
    """The shells of one renderer (templates ``digest_html`` and ``digest_text`` of
    ``env``): ``slot_papers`` and ``slot_compact`` stand where the entries go; ``shared``
    says whether the HTML shell may be shared (see :func:`prints_only`); ``cache`` holds at
    most ``cache_size`` (2,000 at most) inlined shells, keyed by their rendering, and as
    many cut shells are kept per template."""

    def __init__(
        self,
        render: Render,
        inliner: css_inline.CSSInliner,
        env: Environment,
        *,
        nonce: str,
        cache_size: int,
    ) -> None:
        self._render = render
        self._inliner = inliner
        self.slot_papers = f"pdslot{nonce}papers"
        self.slot_compact = f"pdslot{nonce}compact"
        self._slots = re.compile(f"({self.slot_papers}|{self.slot_compact})")
        self._mask = f"pdmask{nonce}v"
        self._tokens = re.compile(f"{self._mask}([0-9]+)x")
        size = min(cache_size, 2_000)
        self.cache: Cache[str, str] = Cache(size)
        self._literals: Cache[str, bytes] = Cache(size)
        self._forms: dict[str, Cache[Hashable, Form]] = {}
        self._pure: dict[str, bool] = {}
        self._escaped: dict[str, bool] = {}
        shares: dict[str, bool] = {}
        for key in ("digest_html", "digest_text"):
            name = TEMPLATES[key]
            source = template_source(env, name)
            self._forms[key] = Cache(size)
            self._pure[key] = pure(env, source)
            self._escaped[key] = escapes(env, name)
            shares[key] = prints_only(env, name, source, SHELL_TEXT, SHELL_LISTS)
        # Values filled in after inlining must be escaped: the inliner parses the HTML.
        self.shared = shares["digest_html"] and self._escaped["digest_html"]
        html = TEMPLATES["digest_html"]
        self._counted = self._pure["digest_html"] and prints_only(
            env, html, template_source(env, html), SHELL_TEXT, SHELL_LISTS, SHELL_COUNTS
        )
        self.text_shared = shares["digest_text"]
        self._last: tuple[DigestContext, tuple[Any, ...], list[str]] | None = None

    def cut(self, rendered: str) -> Shell:
        """``rendered`` cut at the slots, each literal before a slot ending with a newline."""
        parts = self._slots.split(rendered)
        encoded: list[bytes] = []
        for index, part in enumerate(parts[::2]):
            if 2 * index + 1 < len(parts) and not part.endswith("\n"):
                part += "\n"
            qp = self._literals.get(part)
            encoded.append(
                qp if qp is not None else self._literals.put(part, quoted_printable(part))
            )
        return Shell(tuple(parts[1::2]), tuple(encoded), sum(map(len, encoded)))

    def html(self, context: DigestContext) -> Shell:
        """The HTML shell rendered, inlined and cut at its slots.

        CSS inlining is the costly step, and shells differ between subscribers mostly in
        text: subject, preview line, queries, address, name and links. When the template
        only prints those values or tests them (see :func:`prints_only`), it is rendered
        with placeholders in their place, inlined and cut once, and shared by every
        subscriber whose shell differs only in them; their escaped values fill it.
        """
        if self.shared:
            form = self._form("digest_html", context)
            values = [str(escape(value)) for value in self._slotted(context)[1]]
            if not form.fallback:
                return form.fill(values)
            # Placeholders did not survive inlining as they were: inlined per subscriber.
            html = _fill(form.fallback, ((f"{self._mask}{i}x", v) for i, v in enumerate(values)))
        else:
            html = self._render("digest_html", context)
        inlined = self.cache.get(html)
        if inlined is None:
            inlined = self.cache.put(html, self._inline(html))
        return self.cut(inlined)

    def text(self, context: DigestContext) -> Shell:
        """The text shell rendered and cut at its slots: shared as the HTML one is (see
        :meth:`html`), when the template only prints the per-subscriber values."""
        if not self.text_shared:
            return self.cut(self._render("digest_text", context))
        values = self._slotted(context)[1]
        form = self._form("digest_text", context)
        return form.fill([str(escape(v)) for v in values] if form.escaped else values)

    def _form(self, key: str, context: DigestContext) -> Form:
        """The shared shell of template ``key`` for ``context``: found by the context with
        placeholders when the template is :func:`pure`, else by its rendering."""
        slotted, values = self._slotted(context)
        rendered = None if self._pure[key] else self._render(key, self._context(slotted))
        found_by: Hashable = slotted if rendered is None else rendered
        forms = self._forms[key]
        found = forms.get(found_by)
        if found is not None:
            return found
        if key == "digest_html":
            return forms.put(found_by, self._html_form(slotted, len(values), rendered))
        shared = self._render(key, self._context(slotted)) if rendered is None else rendered
        return forms.put(found_by, self._cut_form(shared, self._escaped[key]))

    def _html_form(self, slotted: tuple[Any, ...], count: int, rendered: str | None) -> Form:
        """The HTML shell with placeholders (``rendered``, or rendered now) inlined, cut.
        Inlining is shared by the shells of any counts (see :class:`Count`) when the
        template only prints, tests or compares them: its numbers go in afterwards."""
        tokens = [f"{self._mask}{i}x" for i in range(count)]
        numbers: list[tuple[str, str]] = []
        if rendered is None:
            context = self._context(slotted)
            for at in _COUNTS_AT if self._counted else ():
                value = slotted[at]
                if type(value) is int:
                    token = f"{self._mask}n{at}x"
                    context[_FIELDS[at]] = Count(value, token)
                    numbers.append((token, str(value)))
            rendered = self._render("digest_html", context)
        inlined = self.cache.get(rendered)
        if inlined is None:
            tokens += [token for token, _ in numbers]
            inlined = self.cache.put(rendered, self._inline_shared(rendered, tokens))
        if not inlined:  # placeholders did not survive inlining as they were
            return Form((), (), True, fallback=_fill(rendered, numbers))
        return self._cut_form(_fill(inlined, numbers), True)

    def _cut_form(self, shared: str, escaped: bool) -> Form:
        parts = self._slots.split(shared)
        literals = []
        for index, part in enumerate(parts[::2]):
            if 2 * index + 1 < len(parts) and not part.endswith("\n"):
                part += "\n"
            literals.append(self._pieces(part))
        return Form(tuple(parts[1::2]), tuple(literals), escaped)

    @staticmethod
    def _context(slotted: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(_FIELDS, slotted, strict=True))

    def _pieces(self, literal: str) -> tuple[bytes | Line, ...]:
        """``literal`` as runs of whole lines: those without placeholders encoded, the
        others cut at their placeholders (see :class:`Form`)."""
        lines = literal.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        ends = ["\n"] * (len(lines) - 1) + [""]
        pieces: list[bytes | Line] = []
        run: list[str] = []
        filled = False
        for line, end in zip(lines, ends, strict=True):
            if not (line or end):
                continue
            if run and (self._mask in line) != filled:
                pieces.append(self._piece("".join(run), filled))
                run = []
            filled = self._mask in line
            run.append(line + end)
        if run:
            pieces.append(self._piece("".join(run), filled))
        return tuple(pieces)

    def _piece(self, text: str, filled: bool) -> bytes | Line:
        if not filled:
            # Encoded once and shared: most runs are the same in every form (the header,
            # the styles, the footer); each form kept its own copy (~13 MB of a worker's
            # forms at 100,000 bench subscribers).
            qp = self._literals.get(text)
            return qp if qp is not None else self._literals.put(text, quoted_printable(text))
        parts: list[str | int] = list(self._tokens.split(text))
        parts[1::2] = [int(i) for i in parts[1::2]]
        return tuple(parts)

    def _inline(self, html: str) -> str:
        try:
            return str(self._inliner.inline(html))
        except css_inline.InlineError as exc:
            raise RenderError(TEMPLATES["digest_html"], f"CSS inlining failed: {exc}") from exc

    def _inline_shared(self, shared: str, tokens: Iterable[str]) -> str:
        """``shared`` inlined, or "" when a placeholder is not where it was (in CSS, say)."""
        inlined = self._inline(shared)
        if any(shared.count(token) != inlined.count(token) for token in tokens):
            return ""
        return inlined

    def _slotted(self, context: DigestContext) -> tuple[tuple[Any, ...], list[str]]:
        """``context``'s values (in the order of its fields) with its per-subscriber text
        as placeholders, and those values. Only printable, non-blank values: HTML parsing
        treats whitespace and control characters apart, placeholders never. The last
        context's are kept: its HTML and text shells take the same."""
        last = self._last
        if last is not None and last[0] is context:
            return last[1], last[2]
        values: list[str] = []
        mask = self._mask

        def hold(value: str | None) -> str | None:
            if not value or not value.isprintable() or value.isspace():
                return value
            values.append(value)
            return f"{mask}{len(values) - 1}x"

        slotted = list(_ALL(context))
        for at in _TEXT_AT:
            slotted[at] = hold(slotted[at])
        for at in _LISTS_AT:
            slotted[at] = tuple(map(hold, slotted[at]))
        key = tuple(slotted)
        self._last = (context, key, values)
        return key, values

    def assemble(
        self,
        shell: Shell,
        template: str,
        entries: dict[str, list[bytes]],
    ) -> Body:
        """The shell with each slot filled by its entry's encoded pieces, as a
        quoted-printable body. Every piece comes from :func:`quoted_printable` (no line
        starts with ".") and ends with a newline, so neither does a line of the whole:
        SMTP sends it without dot-stuffing."""
        chunks = [shell.encoded[0]]
        for slot, literal in zip(shell.slots, shell.encoded[1:], strict=True):
            chunks += entries.get(slot, ())
            chunks.append(literal)
        for slot, pieces in entries.items():
            if pieces and slot not in shell.slots:
                name = "papers" if slot == self.slot_papers else "compact"
                raise RenderError(
                    template, f"does not output {{{{ {name} }}}}: papers would be lost"
                )
        return Body("quoted-printable", b"".join(chunks), dotted=False)
