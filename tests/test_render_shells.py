"""The digest shells shared between subscribers: which templates may be shared and kept by
their context, and that a shared shell is byte for byte the one rendered for each alone."""

from __future__ import annotations

import html as htmllib
from pathlib import Path

import pytest

from digest.compose import EmailLinks, Renderer
from digest.compose.shells import SHELL_COUNTS, SHELL_LISTS, SHELL_TEXT, prints_only, pure
from digest.compose.templates import environment
from digest.models import Subscriber
from tests.test_render import DAY, make_match, make_paper

SUBSCRIBERS = [
    Subscriber(email="ada@example.org", name="Ada", keywords=("diffusion", "a < b & c")),
    Subscriber(email="bo@example.org", name=None, keywords=("x",), exclude=("y", "z")),
    Subscriber(email="cy@example.org", name="  ", keywords=()),
    Subscriber(email="di@example.org", name="tab\tname", keywords=("Ünïcode — ✓",)),
]


def _emails(renderer: Renderer, one_off: bool = False) -> list[tuple[str, bytes]]:
    """Each subscriber's HTML (unescaped: the CSS inliner writes a quote as ``&quot;``
    where markupsafe writes ``&#34;``) and encoded text."""
    papers = [make_paper(i) for i in range(5)]
    out = []
    for n, sub in enumerate(SUBSCRIBERS * 2):
        links = EmailLinks(
            f'https://d.example/u?t={n}&a="1"' if n % 3 else None,
            f"https://d.example/m?t={n}" if n % 2 else None,
            f"https://d.example/f{n}",
            "https://d.example/archive/2026-11-22",
        )
        email = renderer.render_digest(
            day=DAY,
            subscriber=sub,
            matches=[make_match(p) for p in papers[n % 5 :]],
            links=links,
            total_in_listing=9,
            max_papers=2 + n % 3,
            one_off=one_off or n == 5,
        )
        out.append((htmllib.unescape(email.html), email.text_body.data))
    return out


def _alone(renderer: Renderer) -> Renderer:
    renderer._shell_maker.shared = False
    renderer._shell_maker.text_shared = False
    return renderer


@pytest.mark.parametrize("templates", [None, "operator"])
def test_shared_shells_are_the_bytes_of_each_subscribers_own(
    tmp_path: Path, templates: str | None
) -> None:
    folder = None
    if templates:
        folder = tmp_path
        (folder / "email").mkdir()
        (folder / "email" / "digest.txt").write_text(
            "{{ subject }}\n{% if not manage_url and subscriber_name %}Hi {{ subscriber_name }}"
            "{% endif %}\n{{ keywords|join }} / {{ exclude|join(' + ') }}\n{{ papers }}"
            "{{ compact }}\n{% for q in keywords %}{{ q }}{{ loop.cycle(',', ';') }}{% endfor %}"
        )
    shared = Renderer(folder)
    assert shared._shell_maker.shared and shared._shell_maker.text_shared
    assert _emails(shared) == _emails(_alone(Renderer(folder)))
    assert _emails(shared, one_off=True) == _emails(_alone(Renderer(folder)), one_off=True)


def test_a_shell_is_rendered_once_per_context_with_placeholders() -> None:
    renderer = Renderer()
    rendered: list[str] = []
    render = renderer._render

    def counted(key: str, context: object) -> str:
        rendered.append(key)
        return render(key, context)

    renderer._shell_maker._render = counted
    for sub in SUBSCRIBERS[:2] * 3:  # two shapes of shell: one query, or two with one excluded
        renderer.render_digest(
            day=DAY, subscriber=sub, matches=[make_match(make_paper())],
            links=EmailLinks("https://d.example/u"), total_in_listing=9, max_papers=None,
        )  # fmt: skip
    assert sorted(rendered) == ["digest_html"] * 2 + ["digest_text"] * 2


@pytest.mark.parametrize(
    "source, printed, kept",
    [
        ("{{ subject }}{% if a and not feed_url %}x{% endif %}{{ loop }}", True, True),
        ("{{ matched_count }}{% if more_count > 1 and not shown_count %}{% endif %}", True, True),
        ("{{ keywords|join(', ') }}{% for q in exclude %}{{ q }}{% endfor %}", True, True),
        ("{% for q in keywords %}{{ loop.cycle(1, 2) }}{{ loop.index }}{% endfor %}", True, True),
        ("{{ subject }} {{ range(3)|random }}", True, False),
        ("{{ subject }} {{ day.today() }}", True, False),
        ("{{ subject }} {{ day.year }}", True, False),
        ("{{ subject }} {{ keywords|map('upper')|join }}", False, False),
        ("{{ subject or 'x' }}", False, True),
        ("{% if not keywords %}none{% endif %}{{ 'x' if exclude }}", True, True),
        ("{{ subject|upper }}", False, True),
        ("{% include 'x.html' %}", False, False),
        ("{{ subject", False, False),
    ],
)
def test_which_shells_may_be_shared_and_kept_by_their_context(
    source: str, printed: bool, kept: bool
) -> None:
    env = environment()
    assert prints_only(env, "email/digest.html", source, SHELL_TEXT, SHELL_LISTS) is printed
    assert pure(env, source) is kept


@pytest.mark.parametrize(
    "source, counted",
    [
        ("{{ matched_count }} paper{{ '' if matched_count == 1 else 's' }}", True),
        ("{% if 2 < more_count %}{{ max_papers }}{% endif %}{{ subject }}", True),
        ("{{ matched_count + 1 }}", False),
        ("{{ matched_count|string|length }}", False),
        ("{{ '%d'|format(shown_count) }}", False),
        ("{{ matched_count ~ 'x' }}", False),
        ("{{ subject == 'x' }}", False),
    ],
)
def test_which_shells_may_take_their_counts_as_placeholders(source: str, counted: bool) -> None:
    env = environment()
    numbers = SHELL_COUNTS
    assert prints_only(env, "x.html", source, SHELL_TEXT, SHELL_LISTS, numbers) is counted


def test_counts_compare_as_themselves_and_print_as_placeholders(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.html").write_text(
        "<p>{{ matched_count }} {% if matched_count > 2 %}many{% else %}few{% endif %}"
        " {{ 'one' if more_count == 1 else 'not one' }}</p>{{ papers }}{{ compact }}"
    )
    renderer = Renderer(tmp_path)
    assert renderer._shell_maker._counted
    for n, max_papers, expected in ((1, 1, "1 few not one"), (3, 2, "3 many one")):
        matches = [make_match(make_paper(i)) for i in range(n)]
        email = renderer.render_digest(
            day=DAY, subscriber=SUBSCRIBERS[0], matches=matches, links=EmailLinks(None),
            total_in_listing=9, max_papers=max_papers,
        )  # fmt: skip
        assert f"<p>{expected}</p>" in email.html
    assert len(renderer._shells) == 2  # inlined once for each outcome of the tests


def test_an_impure_shell_is_shared_by_its_rendering(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.txt").write_text(
        "{{ subject }} {{ [1, 2, 3]|random }}\n{{ papers }}{{ compact }}"
    )
    renderer = Renderer(tmp_path)
    assert renderer._shell_maker.text_shared and not renderer._shell_maker._pure["digest_text"]
    seen = {_emails(renderer)[0][1].split(b"\r\n")[0][-1:] for _ in range(30)}
    assert seen == {b"1", b"2", b"3"}  # drawn anew for every email, as the template says
