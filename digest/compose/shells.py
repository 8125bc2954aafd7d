"""The digest shell (``email/digest.*``) around the entries: rendered, CSS-inlined once and
shared by every subscriber whose shell differs only in text, when the template's syntax tree
shows it only prints that text (:func:`prints_only`); cut at its slots, filled per subscriber.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import css_inline
from jinja2 import Environment, TemplateError, nodes
from markupsafe import escape

from digest.compose.cache import Cache
from digest.compose.fragments import Render
from digest.compose.message import Body, quoted_printable
from digest.compose.templates import TEMPLATES
from digest.compose.views import DigestContext, as_dict
from digest.errors import RenderError


@dataclass(frozen=True, slots=True)
class Shell:
    """A rendered shell cut at its slots: literal, slot, literal, … (literals QP-encoded)."""

    parts: tuple[str, ...]
    encoded: tuple[bytes, ...]
    size: int


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
#: Nodes that take a template's names where this module cannot follow them.
_OPAQUE = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.EvalContextModifier,
)


def prints_only(
    env: Environment, name: str, source: str | None, texts: Iterable[str], lists: Iterable[str]
) -> bool:
    """Whether template ``name`` (autoescaped) only prints the values ``texts`` and the
    items of ``lists`` (``{{ v }}``, ``{% for q in l %}…{{ q }}``) or tests their truth
    (``{% if v %}``, ``… if v else …``): then its output for any such values is its output
    for placeholders with the escaped values put in their place. ``source``: the template's
    text (None: it could not be read)."""
    if source is None:
        return False
    try:
        tree = env.parse(source)
    except TemplateError:
        return False
    autoescape = env.autoescape(name) if callable(env.autoescape) else env.autoescape
    if not autoescape or any(True for _ in tree.find_all(_OPAQUE)):
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
    return _only_printed(tree, None, watched, loops)


def _only_printed(
    node: nodes.Node, parent: nodes.Node | None, watched: set[str], loops: list[nodes.For]
) -> bool:
    if isinstance(node, nodes.Name) and node.name in watched:
        if node.ctx != "load":  # assigned: only as the target of a loop over a list
            if not any(node is loop.target for loop in loops):
                return False
        elif not (
            isinstance(parent, nodes.Output)
            or (isinstance(parent, nodes.If | nodes.CondExpr) and parent.test is node)
            or any(parent is loop and loop.iter is node for loop in loops)
        ):
            return False
    return all(_only_printed(child, node, watched, loops) for child in node.iter_child_nodes())


def _fill(text: str, values: Iterable[tuple[str, str]]) -> str:
    """``text`` with each placeholder replaced by its value."""
    for token, value in values:
        text = text.replace(token, value)
    return text


class Shells:
    """The shells of one renderer: ``slot_papers`` and ``slot_compact`` stand where the
    entries go; ``shared`` says whether the HTML shell may be shared (see
    :func:`prints_only`); ``cache`` holds at most ``cache_size`` (2,000 at most) inlined
    shells, keyed by their rendering."""

    def __init__(
        self,
        render: Render,
        inliner: css_inline.CSSInliner,
        *,
        nonce: str,
        shared: bool,
        cache_size: int,
    ) -> None:
        self._render = render
        self._inliner = inliner
        self.slot_papers = f"pdslot{nonce}papers"
        self.slot_compact = f"pdslot{nonce}compact"
        self._slots = re.compile(f"({self.slot_papers}|{self.slot_compact})")
        self._mask = f"pdmask{nonce}v"
        self.shared = shared
        self.cache: Cache[str, str] = Cache(min(cache_size, 2_000))
        self._literals: Cache[str, bytes] = Cache(min(cache_size, 2_000))

    def cut(self, rendered: str) -> Shell:
        """``rendered`` cut at the slots, each literal before a slot ending with a newline."""
        parts = self._slots.split(rendered)
        encoded: list[bytes] = []
        for index, part in enumerate(parts):
            if index % 2:
                encoded.append(b"")
                continue
            if index + 1 < len(parts) and not part.endswith("\n"):
                parts[index] = part = part + "\n"
            qp = self._literals.get(part)
            encoded.append(
                qp if qp is not None else self._literals.put(part, quoted_printable(part))
            )
        return Shell(tuple(parts), tuple(encoded), sum(len(e) for e in encoded))

    def html(self, context: DigestContext) -> Shell:
        """The HTML shell rendered, inlined and cut at its slots.

        CSS inlining is the costly step, and shells differ between subscribers mostly in
        text: subject, preview line, queries, address, name and links. When the template
        only prints those values or tests them (see :func:`prints_only`), it is rendered
        with placeholders in their place, and the inlined rendering is shared by every
        subscriber whose shell differs only in them; their escaped values fill it.
        """
        if self.shared:
            slotted, values = self._placeholders(context)
            shared = self._render("digest_html", slotted)
            inlined = self.cache.get(shared)
            if inlined is None:
                inlined = self.cache.put(shared, self._inline_shared(shared, values))
            if inlined:  # "": placeholders did not survive inlining as they were
                return self.cut(_fill(inlined, values))
            html = _fill(shared, values)
        else:
            html = self._render("digest_html", context)
        inlined = self.cache.get(html)
        if inlined is None:
            inlined = self.cache.put(html, self._inline(html))
        return self.cut(inlined)

    def _inline(self, html: str) -> str:
        try:
            return str(self._inliner.inline(html))
        except css_inline.InlineError as exc:
            raise RenderError(TEMPLATES["digest_html"], f"CSS inlining failed: {exc}") from exc

    def _inline_shared(self, shared: str, values: Sequence[tuple[str, str]]) -> str:
        """``shared`` inlined, or "" when a placeholder is not where it was (in CSS, say)."""
        inlined = self._inline(shared)
        if any(shared.count(token) != inlined.count(token) for token, _ in values):
            return ""
        return inlined

    def _placeholders(self, context: DigestContext) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """``context`` with its per-subscriber text as placeholders, and (placeholder,
        escaped value) pairs. Only printable, non-blank values: HTML parsing treats
        whitespace and control characters apart, placeholders never."""
        values: list[tuple[str, str]] = []
        mask = self._mask

        def hold(value: str | None) -> str | None:
            if not value or not value.isprintable() or value.isspace():
                return value
            token = f"{mask}{len(values)}x"
            values.append((token, str(escape(value))))
            return token

        slotted = as_dict(context)
        for name in SHELL_TEXT:
            slotted[name] = hold(slotted[name])
        for name in SHELL_LISTS:
            slotted[name] = tuple(map(hold, slotted[name]))
        return slotted, values

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
        chunks: list[bytes] = []
        for index, part in enumerate(shell.parts):
            if index % 2 == 0:
                chunks.append(shell.encoded[index])
            elif part in entries:
                chunks += entries[part]
        for slot, pieces in entries.items():
            if pieces and slot not in shell.parts:
                name = "papers" if slot == self.slot_papers else "compact"
                raise RenderError(
                    template, f"does not output {{{{ {name} }}}}: papers would be lost"
                )
        return Body("quoted-printable", b"".join(chunks), dotted=False)
