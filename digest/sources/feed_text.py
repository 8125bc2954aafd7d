"""A feed's text: its bytes decoded (:func:`decode_body`), its HTML reduced to plain text
(:func:`html_line`, :func:`html_block`), its author strings split into names
(:func:`split_authors`, :func:`person`), and the feeds an HTML page names
(:func:`feeds_named_by`, for the hint when a source's URL is a page).

Feeds put HTML in titles, summaries and author names (escaped once, twice, or as CDATA).
The renderers escape every text field they are given, so what leaves here must be *text*:
no tag of the input survives as markup, ``<script>``, ``<style>`` and the like lose their
content too, and paragraphs (``<p>``, ``<div>``, list items, headings, two ``<br>``) stay
apart as blank lines. A ``<`` that starts no tag (``n < k``) is kept as the character it is.

Charsets: a feed declared ``ISO-8859-1`` that is really UTF-8 is common, so bytes that are
valid UTF-8 are read as UTF-8 whatever they claim; otherwise the declared charset, else
Windows-1252 (which decodes anything), with a warning when a declaration was wrong.

Pure: bytes and strings in, strings out (:mod:`html.parser`, no I/O).
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

from digest.sources.huggingface import clean_block, clean_line

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([\w.:-]+)", re.I)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([\w.:-]+)[\"']", re.I)
_SEVERAL = re.compile(r"\s*(?:,|;|\band\b|&)\s*", re.I)
_JOINED = re.compile(r"\band\b|&", re.I)
_EMAIL = re.compile(r"<?[^\s<>()@,;]+@[^\s<>()@,;]+>?")
_PARENS = re.compile(r"\(\s*\)")
_ET_AL = re.compile(r"[,\s]*\bet\s+al\b\.?\s*$", re.I)
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


def decode_body(body: bytes, content_type: str | None) -> tuple[str, list[str]]:
    """The text of a feed's bytes and a warning when its declared charset was wrong.

    A byte order mark wins; then UTF-8 when the bytes are valid UTF-8; then the charset of
    ``content_type`` or of the XML declaration; then Windows-1252 (which decodes anything).
    """
    for bom, marked in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(marked, "replace"), []
    found = _CHARSET.search(content_type or "")
    head = _XML_ENCODING.match(body[:300])
    declared = found.group(1) if found else head.group(1).decode("ascii") if head else None
    known = _codec(declared)
    warnings: list[str] = []
    if declared and known is None:
        warnings.append(f"unknown charset {declared!r} ignored")
    if known and known.startswith(("utf-16", "utf-32")):
        try:
            return body.decode(known), warnings
        except UnicodeDecodeError:
            pass
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if known and known != "utf-8":
            try:
                return body.decode(known), warnings
            except UnicodeDecodeError:
                pass
        said = f"declared {declared}" if declared else "no charset declared"
        warnings.append(
            f"{said}, but the bytes are not valid UTF-8 (first at byte {exc.start}):"
            " read as Windows-1252"
        )
        return _windows_1252(body), warnings
    if known not in (None, "utf-8") and not body.isascii():
        warnings.append(f"declared {declared}, but the bytes are UTF-8: read as UTF-8")
    return text, warnings


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _windows_1252(body: bytes) -> str:
    try:
        return body.decode("cp1252")
    except UnicodeDecodeError:  # five bytes cp1252 leaves undefined: Latin-1 takes them
        return body.decode("latin-1")


def person(text: str) -> str:
    """A name without the e-mail addresses around it: ``"ada@x.example (Ada Okafor)"``,
    ``"Ada Okafor (ada@x.example)"`` and ``"Ada Okafor <ada@x.example>"`` are
    ``"Ada Okafor"``; a bare address is ``""``."""
    if "@" not in text:
        return text
    rest = _PARENS.sub(" ", _EMAIL.sub(" ", text)).strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1]
    return " ".join(rest.split())


def split_authors(text: str) -> list[str]:
    """The names in one author string: ``"Ada Okafor, Bo Chen and Cy Diaz"`` -> three,
    ``"Okafor, Ada; Chen, Bo"`` -> two (``;`` separates when present), ``"Okafor, Ada"``
    -> one (a surname and a given name), ``"… et al."`` drops the ``et al.``."""
    text = _ET_AL.sub("", text).strip()
    if ";" in text:
        parts = [" ".join(p.split()) for p in text.split(";")]
        return [p for p in parts if p]
    parts = [p for p in _SEVERAL.split(text) if p]
    one = len(parts) == 2 and text.count(",") == 1 and " " not in parts[0]
    if one and not _JOINED.search(text):
        return [text]  # "Okafor, Ada" or "Okafor, Ada B."
    return parts


class _FeedLinks(HTMLParser):
    """The feeds an HTML page names: ``<link rel="alternate" type="application/rss+xml">``."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: (v or "") for k, v in attrs}
        kinds = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
        rel = values.get("rel", "").lower().split()
        href = values.get("href", "").strip()
        if tag == "link" and "alternate" in rel and values.get("type", "").lower() in kinds:
            self.found.extend([href] if href else [])


def feeds_named_by(page: str, base: str) -> list[str]:
    """The feed addresses an HTML page announces, resolved against ``base``."""
    finder = _FeedLinks()
    finder.feed(page[:200_000])
    finder.close()
    return [urljoin(base, href) for href in finder.found]


__all__ = [
    "clean_block",
    "clean_line",
    "decode_body",
    "feeds_named_by",
    "html_block",
    "html_line",
    "person",
    "split_authors",
]
