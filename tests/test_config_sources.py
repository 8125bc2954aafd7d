"""The config's sources: ``[[sources]]`` of every kind, the older ``[source]`` table, and what
a subscriber chooses among them (sources, likes, like threshold); every mistake is one clear
problem, all reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import load
from digest.config.arxiv_categories import check_category
from digest.config.checks import Invalid
from digest.config.preferences import is_paper_ref
from digest.config.sources import ARXIV_API, ARXIV_RSS, HF_URL, SourceSettings
from digest.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


FOUR = """
user_agent = "paper-digest (https://digest.example.org; ops@example.org)"

[[sources]]
name = "hf"
kind = "huggingface"
url = "https://huggingface.co/api/daily_papers"

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "cs.CL", "stat.ML", "hep-th", "cond-mat.mes-hall"]
announce = ["replace", "new"]
rss_url = "http://127.0.0.1:8123/rss"
api_url = "http://127.0.0.1:8123/api/query"
min_interval = 0.5

[[sources]]
name = "neuro"
kind = "feed"
url = "https://example.org/neuroscience/feed/"
timeout = 5
retries = 0
max_bytes = 50000

[[sources]]
name = "local"
kind = "file"
path = "listings"
enabled = false

[mail]
like_threshold = 0.3

[[subscribers]]
email = "ada@example.org"
sources = ["arxiv-ml", "neuro"]
like = ["2503.01234", "https://arxiv.org/abs/2502.04321v2", "10.1000/XYZ.5",
        "hep-th/9901001", "doi:10.5555/abc", "link:example.org/papers/7"]
like_threshold = 0.5

[[subscribers]]
email = "bob@example.org"
"""


def test_four_sources_of_every_kind_load(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, FOUR))
    assert cfg.sources == (
        SourceSettings(name="hf", kind="huggingface", url=HF_URL),
        SourceSettings(
            name="arxiv-ml",
            kind="arxiv",
            categories=("cs.LG", "cs.CL", "stat.ML", "hep-th", "cond-mat.mes-hall"),
            announce=("new", "replace"),
            rss_url="http://127.0.0.1:8123/rss/",  # the categories are appended to it
            api_url="http://127.0.0.1:8123/api/query",
            min_interval=0.5,  # not arXiv's host: its 3 seconds do not apply
        ),
        SourceSettings(
            name="neuro",
            kind="feed",
            url="https://example.org/neuroscience/feed/",  # as given: a feed's slash matters
            timeout=5.0,
            retries=0,
            max_bytes=50_000,
        ),
        SourceSettings(name="local", kind="file", path=tmp_path / "listings", enabled=False),
    )
    assert [s.name for s in cfg.enabled_sources] == ["hf", "arxiv-ml", "neuro"]
    assert cfg.user_agent == "paper-digest (https://digest.example.org; ops@example.org)"
    assert cfg.mail.like_threshold == 0.3
    ada, bob = cfg.subscribers
    assert ada.sources == ("arxiv-ml", "neuro")
    assert ada.like == (
        "2503.01234",
        "https://arxiv.org/abs/2502.04321v2",
        "10.1000/XYZ.5",
        "hep-th/9901001",
        "doi:10.5555/abc",
        "link:example.org/papers/7",
    )
    assert ada.like_threshold == 0.5
    assert (bob.sources, bob.like, bob.like_threshold) == (None, (), None)
    # The deprecated single-source view: the first enabled source, in the old shape.
    assert (cfg.source.kind, cfg.source.url, cfg.source.timeout) == ("huggingface", HF_URL, 30.0)


def test_arxiv_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, '[[sources]]\nname = "ax"\nkind = "arxiv"\ncategories = "cs"\n'))
    (ax,) = cfg.sources
    assert (ax.categories, ax.announce, ax.rss_url, ax.api_url, ax.min_interval) == (
        ("cs",), ("new", "cross"), ARXIV_RSS, ARXIV_API, None
    )  # fmt: skip
    assert cfg.source.url == ARXIV_RSS and cfg.user_agent is None
    assert cfg.mail.like_threshold == 0.35


@pytest.mark.parametrize(
    ("table", "name", "url", "path"),
    [
        ("", "huggingface", HF_URL, None),
        ('[source]\nkind = "huggingface"\nurl = "https://hf.example/api/"\ntimeout = 7\n',
         "huggingface", "https://hf.example/api", None),
        ('[source]\nkind = "file"\npath = "days"\nretries = 1\n', "file", None, "days"),
    ],
)  # fmt: skip
def test_the_old_source_table_is_one_source_named_after_its_kind(
    tmp_path: Path, table: str, name: str, url: str | None, path: str | None
) -> None:
    cfg = load(write(tmp_path, table))
    (only,) = cfg.sources
    assert (only.name, only.kind, only.url) == (name, name, url)
    assert only.path == (tmp_path / path if path else None)
    assert only.enabled and only.categories == ()
    old = cfg.source
    assert (old.kind, old.path, old.timeout, old.retries, old.max_bytes) == (
        name, only.path, only.timeout, only.retries, only.max_bytes
    )  # fmt: skip
    assert old.timeout == (7.0 if "timeout" in table else 30.0)


def test_a_subscriber_of_an_old_config_may_name_its_one_source(tmp_path: Path) -> None:
    text = '[source]\nkind = "file"\npath = "d"\n[[subscribers]]\nemail = "a@example.org"\n'
    cfg = load(write(tmp_path, text + 'sources = ["file"]\n'))
    assert cfg.subscribers[0].sources == ("file",)
    assert problems(tmp_path, text + 'sources = ["huggingface"]\n') == [
        'subscribers[0].sources: no source "huggingface" (the sources: file)'
    ]


BROKEN = """
user_agent = "digest\\u00e9"

[[sources]]
name = "HF Daily"
kind = "huggingface"

[[sources]]
name = "ax"
kind = "arxiv"
categoris = ["cs.LG"]

[[sources]]
name = "ax2"
kind = "arxiv"
categories = ["cs.lg", "math.AG"]
announce = ["new", "crosss"]
url = "https://arxiv.org/"
min_interval = 1

[[sources]]
name = "blog"
kind = "feed"

[[sources]]
name = "local"
kind = "file"

[[sources]]
name = "blog"
kind = "rss"
url = "https://example.org/rss"

[[sources]]
kind = "feed"
url = "https://example.org/a.xml"

[[sources]]
name = "ok"
kind = "feed"
url = "https://example.org/b.xml"
enabled = "no"

[mail]
like_threshold = 1.5

[[subscribers]]
email = "ada@example.org"
sources = ["ax3", "nope"]
like = ["2503.01234", "my favourite paper", "https://example.org/x"]
like_threshold = -0.1
"""


def test_every_source_mistake_is_one_clear_problem_all_at_once(tmp_path: Path) -> None:
    assert problems(tmp_path, BROKEN) == [
        "user_agent: expected one line of printable ASCII, at most 500 characters,"
        ' got "digest\u00e9"',
        "mail.like_threshold: expected a number 0-1, got 1.5",
        'sources[0].name: expected 1-64 lower-case letters, digits or -, got "HF Daily": did'
        ' you mean "hf-daily"?',
        'sources[1].categoris: unknown key (did you mean "categories"?)',
        'sources[1].categories: required when kind = "arxiv"',
        'sources[2].categories: "cs.lg" is not an arXiv category: did you mean "cs.LG"?',
        'sources[2].announce: "crosss" is not an announcement type: did you mean "cross"?',
        'sources[2].url: not a key of kind = "arxiv" sources (it is for "huggingface" or'
        ' "feed") (kind = "arxiv" takes: name, kind, categories, announce, rss_url, api_url,'
        " timeout, retries, max_bytes, enabled, min_interval)",
        "sources[2].min_interval: arXiv asks for at most one request every 3 seconds, got 1"
        " (leave it out for arXiv's 3, or make it larger)",
        'sources[3].url: required when kind = "feed"',
        'sources[4].path: required when kind = "file"',
        'sources[5].kind: expected one of "huggingface", "arxiv", "feed", "file", got "rss"',
        'sources[5].name: duplicate source "blog" (also sources[3]) (each source needs its own'
        " name)",
        'sources[6].name: missing: every source needs one (such as name = "feed")',
        'sources[7].enabled: expected true or false, got "no"',
        'subscribers[0].like: "my favourite paper" is not a paper: expected an arXiv id'
        ' ("2503.01234"), an arxiv.org/abs or /pdf link, a DOI ("10.1000/xyz") or a paper key'
        ' ("link:…", "title:…")',
        "subscribers[0].like_threshold: expected a number 0-1, got -0.1",
        'subscribers[0].sources: no source "ax3" (did you mean "ax"? the sources: ax, ax2,'
        " blog, local, ok)",
        'subscribers[0].sources: no source "nope" (the sources: ax, ax2, blog, local, ok)',
    ]


def test_duplicate_names_are_named_with_the_first(tmp_path: Path) -> None:
    text = (
        '[[sources]]\nname = "hf"\nkind = "huggingface"\n'
        '[[sources]]\nname = "hf"\nkind = "feed"\nurl = "https://example.org/f.xml"\n'
    )
    assert problems(tmp_path, text) == [
        'sources[1].name: duplicate source "hf" (also sources[0]) (each source needs its own name)'
    ]


def test_both_source_tables_are_refused(tmp_path: Path) -> None:
    text = '[source]\nkind = "huggingface"\n[[sources]]\nname = "hf"\nkind = "huggingface"\n'
    (problem,) = problems(tmp_path, text)
    assert problem.startswith("source: both [source] and [[sources]]")
    assert "move [source]'s keys into a [[sources]] entry" in problem


@pytest.mark.parametrize(
    "sources",
    [
        "sources = []\n",
        '[[sources]]\nname = "hf"\nkind = "huggingface"\nenabled = false\n',
    ],
)
def test_no_enabled_source_is_an_error(tmp_path: Path, sources: str) -> None:
    assert problems(tmp_path, sources) == [
        "sources: no enabled source: a run would have nothing to read (add a [[sources]]"
        " entry, or set enabled = true on one)"
    ]


def test_a_table_instead_of_a_list_and_an_old_table_of_a_new_kind(tmp_path: Path) -> None:
    assert problems(tmp_path, '[sources]\nname = "hf"\n') == [
        "sources: expected [[sources]] tables"
    ]
    assert problems(tmp_path, '[source]\nkind = "arxiv"\ncategories = ["cs"]\n') == [
        "source.categories: unknown key",
        'source.kind: "arxiv" sources are configured in the [[sources]] list (replace [source]'
        " by [[sources]] entries, each with a name and a kind)",
    ]


@pytest.mark.parametrize(
    ("value", "meant"),
    [
        ("cs.lg", "cs.LG"),
        ("CS.LG", "cs.LG"),
        ("cs-LG", "cs.LG"),
        ("hep_th", "hep-th"),
        ("hep-th.XX", "hep-th"),
        ("mathh.AG", "math.AG"),
        ("stat ML", "stat.ML"),
        ("physics.OPTICS", "physics.optics"),
        ("astro-ph.co", "astro-ph.CO"),
    ],
)
def test_a_near_miss_category_suggests_what_was_meant(value: str, meant: str) -> None:
    with pytest.raises(Invalid, match=f'did you mean "{meant}"'):
        check_category(value)
    assert check_category(meant) == meant


@pytest.mark.parametrize("value", ["", "foo", "cs.LGG", "cs.LG,cs.CL", "math.ag.x", 7])
def test_what_is_no_category_at_all(value: object) -> None:
    with pytest.raises(Invalid) as caught:
        check_category(value)
    assert "did you mean" not in str(caught.value)
    assert "arXiv category" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2503.01234", True),
        ("2503.01234v3", True),
        ("arXiv:2503.01234", True),
        ("hep-th/9901001v2", True),
        ("https://arxiv.org/pdf/2503.01234v1", True),
        ("https://doi.org/10.48550/arXiv.2503.01234", True),
        ("10.1145/3580305.3599000", True),
        ("doi:10.1145/3580305", True),
        ("link:example.org/p/1", True),
        ("title:0123456789abcdef01234567", True),
        ("title:not a hash", False),
        ("https://example.org/paper", False),
        ("2503.012", False),
        ("", False),
        ("a" * 3000, False),
    ],
)
def test_what_a_like_may_be(text: str, ok: bool) -> None:
    assert is_paper_ref(text) is ok


def test_config_check_names_each_source_and_every_problem(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    (tmp_path / "listings").mkdir()
    path = write(tmp_path, FOUR.replace('path = "listings"', 'path = "nowhere"'))
    run = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert run.exit_code == 0, run.output
    assert run.stdout.splitlines()[1:] == [
        f"  source hf: huggingface {HF_URL}",
        "  source arxiv-ml: arxiv cs.LG+cs.CL+stat.ML+hep-th+cond-mat.mes-hall (new, replace)",
        "  source neuro: feed https://example.org/neuroscience/feed/",
        f"  source local: file {tmp_path / 'nowhere'} (disabled)",
    ]
    assert run.stderr == ""  # a disabled source's missing folder is no concern
    write(tmp_path, '[source]\nkind = "file"\npath = "gone"\n')
    run = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert run.exit_code == 0, run.output
    assert f"warning: source file: {tmp_path / 'gone'} does not exist" in run.stderr
    write(tmp_path, BROKEN)
    run = CliRunner().invoke(cli, ["--config", str(path), "config", "check"])
    assert run.exit_code == 2
    assert f"{path}: 19 problems:" in run.stderr
    assert '  - sources[5].name: duplicate source "blog" (also sources[3])' in run.stderr


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="csmathepqbioAGLPNC.-_: ,", max_size=14) | st.text(max_size=10))
def test_any_text_is_a_category_or_an_invalid_whose_suggestion_is_one(text: str) -> None:
    try:
        assert check_category(text) == text
    except Invalid as exc:
        meant = re.search(r'did you mean "([^"]+)"\?$', str(exc))
        if meant:
            assert check_category(meant.group(1)) == meant.group(1)
