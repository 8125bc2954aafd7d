"""Plain text out of a feed's HTML: tags stripped, entities decoded, whitespace collapsed.

Feeds put HTML in titles, summaries and author names (escaped once, twice, or as CDATA).
The renderers escape every text field they are given, so what leaves here must be *text*:
no tag of the input survives as markup, ``<script>``, ``<style>`` and the like lose their
content too, and paragraphs (``<p>``, ``<div>``, list items, headings, two ``<br>``) stay
apart as blank lines. A ``<`` that starts no tag (``n < k``) is kept as the character it is.

Pure: strings in, strings out (:mod:`html.parser`, no I/O).
"""

from __future__ import annotations

from html.parser import HTMLParser

from digest.sources.huggingface import clean_block, clean_line

#: Elements whose content is not text a reader sees.
_HIDDEN = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "svg", "math", "head"}
)
#: Elements that end a paragraph (their start and their end).
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption",
        "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
        "nav", "ol", "p", "pre", "section", "table", "tr", "ul", "body", "html",
    }
)  # fmt: skip


class _TextMaker(HTMLParser):
    """Collects the text a browser would show, with paragraph breaks as blank lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)  # <script/> hides nothing

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN and self.hidden:
            self.hidden -= 1
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def _break(self, tag: str) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")


def _text(markup: str) -> str:
    maker = _TextMaker()
    maker.feed(markup)
    maker.close()
    return "".join(maker.parts)


def html_block(markup: str) -> str:
    """The text of an HTML fragment with its paragraphs kept apart (``\\n\\n``), the lines
    inside a paragraph joined: ``"<p>One <b>two</b></p><p>Three</p>"`` ->
    ``"One two\\n\\nThree"``."""
    return clean_block(_text(markup.replace("\r\n", "\n")))


def html_line(markup: str) -> str:
    """The text of an HTML fragment on one line: ``"<i>Tiny</i> models &amp; more"`` ->
    ``"Tiny models & more"``."""
    return clean_line(_text(markup))


__all__ = ["clean_block", "clean_line", "html_block", "html_line"]
