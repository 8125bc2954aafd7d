"""Finding and loading the email templates: the operator's folder first, then the bundled
ones. The one module of :mod:`digest.compose` that reads files (through Jinja's loader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import (
    BytecodeCache,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    select_autoescape,
)
from jinja2.bccache import Bucket
from markupsafe import Markup

from digest.compose.feed_entries import EntryContent, entry_content
from digest.errors import RenderError

#: Template names, relative to a templates folder; ``email/email.css`` is read as plain CSS.
TEMPLATES = {
    "subject": "email/subject.txt",
    "digest_html": "email/digest.html",
    "digest_text": "email/digest.txt",
    "paper_html": "email/paper.html",
    "paper_text": "email/paper.txt",
    "compact_html": "email/compact.html",
    "compact_text": "email/compact.txt",
}
STYLESHEET = "email/email.css"


def default_templates_dir() -> Path:
    """The bundled templates: ``digest/templates`` in a wheel, else the repository's."""
    package = Path(__file__).resolve().parent.parent  # digest/
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


class _Compiled(BytecodeCache):
    """Compiled templates kept for the life of the process, by template name and file; Jinja
    compares the source's checksum on every load, so an edited file is compiled again. Each
    run context, the web app and every test make their own environment: without this each
    compiled every template anew (~15 ms a template)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


#: Shared only by environments made by :func:`environment`: compiled code depends on the
#: environment's options, which are the same for all of them.
_COMPILED = _Compiled()


def environment(templates_dir: Path | None = None) -> Environment:
    """A Jinja environment trying ``templates_dir`` first, then the bundled templates;
    autoescaping ``.html``/``.xml``, with undefined names raising."""
    folders = [templates_dir] if templates_dir is not None else []
    folders.append(default_templates_dir())
    return Environment(
        loader=ChoiceLoader([FileSystemLoader(folder) for folder in folders]),
        autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        bytecode_cache=_COMPILED,
    )


@dataclass(frozen=True)
class EmailTemplates:
    """The email templates of one renderer, loaded and compiled, and the stylesheet's text."""

    env: Environment
    templates: dict[str, Template]
    stylesheet: Markup


def load_templates(templates_dir: Path | None) -> EmailTemplates:
    """Every template of :data:`TEMPLATES` and :data:`STYLESHEET`, ``templates_dir`` first.
    Raises :class:`RenderError` when the folder is not one, or a template is missing or
    broken."""
    if templates_dir is not None and not templates_dir.is_dir():
        raise RenderError(str(templates_dir), "templates_dir is not a folder")
    env = environment(templates_dir)
    templates: dict[str, Template] = {}
    for key, name in TEMPLATES.items():
        try:
            templates[key] = env.get_template(name)
        except TemplateError as exc:
            raise RenderError(name, f"{type(exc).__name__}: {exc}") from exc
    try:
        css = env.loader.get_source(env, STYLESHEET)[0]  # type: ignore[union-attr]
    except TemplateError as exc:
        raise RenderError(STYLESHEET, f"{type(exc).__name__}: {exc}") from exc
    return EmailTemplates(env, templates, Markup(css))


def template_source(env: Environment, name: str) -> str | None:
    """The text of template ``name``, None when it cannot be read."""
    try:
        return env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
    except TemplateError:
        return None


#: The feed entry's content (see :class:`~digest.compose.feed_entries.FeedEntryContext`).
FEED_ENTRY = "feed/entry.html"


def load_feed_entry(templates_dir: Path | None) -> EntryContent:
    """The renderer of ``feed/entry.html``, ``templates_dir`` first. Raises
    :class:`RenderError` when the folder is not one, or the template is missing or broken."""
    if templates_dir is not None and not templates_dir.is_dir():
        raise RenderError(str(templates_dir), "templates_dir is not a folder")
    try:
        template = environment(templates_dir).get_template(FEED_ENTRY)
    except TemplateError as exc:
        raise RenderError(FEED_ENTRY, f"{type(exc).__name__}: {exc}") from exc
    return entry_content(template)


#: The XSLT stylesheet that shows a feed as a page in a browser; served and written as it is.
FEED_STYLESHEET = "feed/feed.xsl"


def load_feed_stylesheet(templates_dir: Path | None) -> bytes:
    """The text of ``feed/feed.xsl``, ``templates_dir`` first, as UTF-8. Raises
    :class:`RenderError` when it cannot be read."""
    try:
        env = environment(templates_dir)
        text = env.loader.get_source(env, FEED_STYLESHEET)[0]  # type: ignore[union-attr]
    except TemplateError as exc:
        raise RenderError(FEED_STYLESHEET, f"{type(exc).__name__}: {exc}") from exc
    return text.encode("utf-8")
