"""A subscriber's sources, likes and like threshold: from the config, ``digest subscribers
add`` and an import, through the store (SQLite and PostgreSQL) and back out of an export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.config import load, roster
from digest.models import Subscriber
from digest.store import Store

SOURCES = """
[[sources]]
name = "hf"
kind = "huggingface"

[[sources]]
name = "arxiv-ml"
kind = "arxiv"
categories = ["cs.LG", "stat.ML"]

[[sources]]
name = "neuro"
kind = "feed"
url = "https://example.org/neuro.rss"
"""

CONFIG_SUBSCRIBERS = """
[[subscribers]]
email = "ada@example.org"
name = "Ada Lovelace-Núñez"
sources = ["arxiv-ml", "neuro"]
like = ["2503.01234v2", "https://arxiv.org/pdf/2502.04321", "https://doi.org/10.1000/XYZ.5"]
like_threshold = 0.35

[[subscribers]]
email = "bob@example.org"
"""


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "config.toml").write_text(f'database = "{db_url}"\n{SOURCES}', "utf-8")
    return tmp_path


def digest(site: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(site / "config.toml"), *args], input=input)


def stored(db_url: str) -> dict[str, Subscriber]:
    with Store(db_url) as store:
        return {s.email: s for s in store.members.subscribers()}


def exported(site: Path, fmt: str = "jsonl") -> Result:
    result = digest(site, "subscribers", "export", "--format", fmt)
    assert result.exit_code == 0, result.output
    return result


def test_the_configs_choices_are_stored_and_exported(site: Path, db_url: str) -> None:
    config = site / "config.toml"
    config.write_text(config.read_text("utf-8") + CONFIG_SUBSCRIBERS, "utf-8")
    cfg = load(config)
    with Store(db_url) as store:
        assert store.members.sync_config_subscribers(cfg.subscribers) == (2, 0, 0)
        store.likes.sync_config(cfg.subscribers)  # the likes helper's: persists ``like``
        assert store.members.sync_config_subscribers(cfg.subscribers) == (0, 0, 0)
    ada, bob = stored(db_url).values()
    assert (ada.sources, ada.like_threshold) == (("arxiv-ml", "neuro"), 0.35)
    assert (bob.sources, bob.like_threshold) == (None, None)
    rows = [json.loads(line) for line in exported(site).stdout.splitlines()]
    assert [(r["email"], r["sources"], r["like_threshold"]) for r in rows] == [
        ("ada@example.org", ["arxiv-ml", "neuro"], 0.35),
        ("bob@example.org", None, None),
    ]
    # Liked papers we do not have yet are kept under their identities.
    assert sorted(rows[0]["like"]) == ["2502.04321", "2503.01234", "doi:10.1000/xyz.5"]
    assert rows[1]["like"] == []
    # The config changes a choice: written at the next sync, the stored one replaced.
    moved = replace(cfg.subscribers[0], sources=("hf",), like_threshold=None)
    with Store(db_url) as store:
        assert store.members.sync_config_subscribers([moved, cfg.subscribers[1]]) == (0, 1, 0)
    assert stored(db_url)["ada@example.org"].sources == ("hf",)
    assert stored(db_url)["ada@example.org"].like_threshold is None


def test_add_chooses_sources_and_a_threshold_and_keeps_them(site: Path, db_url: str) -> None:
    added = digest(
        site, "subscribers", "add", "ada@example.org", "--source", "neuro",
        "--source", "arxiv-ml", "--source", "neuro", "--like-threshold", "0.4",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    ada = stored(db_url)["ada@example.org"]
    assert (ada.sources, ada.like_threshold) == (("neuro", "arxiv-ml"), 0.4)
    # Added again with other options: the sources and threshold stay.
    again = digest(site, "subscribers", "add", "ada@example.org", "--keyword", "diffusion")
    assert again.exit_code == 0, again.output
    ada = stored(db_url)["ada@example.org"]
    assert (ada.sources, ada.like_threshold, ada.keywords) == (
        ("neuro", "arxiv-ml"), 0.4, ("diffusion",)
    )  # fmt: skip
    shown = digest(site, "subscribers", "show", "ada@example.org")
    assert shown.exit_code == 0, shown.output
    assert "sources:    neuro, arxiv-ml\n" in shown.stdout
    assert "like threshold: 0.4\n" in shown.stdout
    digest(site, "subscribers", "add", "bob@example.org")
    assert (
        "sources:    (every source)\n"
        in digest(site, "subscribers", "show", "bob@example.org").stdout
    )


def test_add_refuses_a_source_not_configured(site: Path, db_url: str) -> None:
    result = digest(site, "subscribers", "add", "ada@example.org", "--source", "arxiv_ml")
    assert result.exit_code == 2
    assert (
        'Invalid value for --source: no source "arxiv_ml" (did you mean "arxiv-ml"?'
        in result.stderr
    )
    assert 'did you mean "arxiv-ml"? the sources: hf, arxiv-ml, neuro' in result.stderr
    bad = digest(site, "subscribers", "add", "ada@example.org", "--like-threshold", "1.5")
    assert bad.exit_code == 2 and "--like-threshold" in bad.stderr
    assert stored(db_url) == {}


def test_the_manage_page_leaves_sources_and_threshold_alone(site: Path, db_url: str) -> None:
    """The manage page has no choice of sources yet: saving it keeps theirs."""
    digest(site, "subscribers", "add", "ada@example.org", "--source", "hf", "--like-threshold", "0")
    with Store(db_url) as store:
        ada = store.members.subscriber("ada@example.org")
        assert ada is not None and ada.id is not None
        store.members.update_preferences(ada.id, Subscriber(email=ada.email, keywords=("llm",)))
    ada = stored(db_url)["ada@example.org"]
    assert (ada.sources, ada.like_threshold, ada.keywords) == (("hf",), 0.0, ("llm",))


PEOPLE = """\
email,name,sources,like,like_threshold
ada@example.org,Ada,arxiv-ml;neuro,2503.01234; https://arxiv.org/abs/2502.04321v3,0.3
bob@example.org,Bob,,,
eve@example.org,Eve,arxiv;hf,,
mal@example.org,Mal,hf,my favourite paper,2
zoe@example.org,Zoë,hf,10.1000/abc,0.75
"""


def test_an_import_checks_each_row_and_round_trips_through_export(site: Path, db_url: str) -> None:
    path = site / "people.csv"
    path.write_text(PEOPLE, "utf-8")
    result = digest(site, "subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:3] == [
        'line 4: sources: "arxiv": no such source (did you mean "arxiv-ml"? the sources: hf,'
        " arxiv-ml, neuro)",
        'line 5: like: "my favourite paper": not a paper: expected an arXiv id ("2503.01234"),'
        ' an arxiv.org/abs or /pdf link, a DOI ("10.1000/xyz") or a paper key ("link:…",'
        ' "title:…")',
        'line 5: like_threshold: "2": expected a number 0-1',
    ]
    assert "added 3, updated 0, unchanged 0, kept unsubscribed 0, rejected 2" in result.stdout
    subs = stored(db_url)
    assert sorted(subs) == ["ada@example.org", "bob@example.org", "zoe@example.org"]
    assert (subs["ada@example.org"].sources, subs["ada@example.org"].like_threshold) == (
        ("arxiv-ml", "neuro"), 0.3
    )  # fmt: skip
    assert (subs["bob@example.org"].sources, subs["bob@example.org"].like_threshold) == (None, None)
    # The import's likes are added (by the likes helper's sync, origin "import").
    read = roster.read(PEOPLE, "csv", sources=["hf", "arxiv-ml", "neuro"])
    with Store(db_url) as store:
        store.likes.sync_config(read.subscribers, origin="import")
    csv_out = exported(site, "csv").stdout
    lines = csv_out.splitlines()
    assert lines[0] == (
        "email,name,keywords,exclude,max_papers,abstract,send_at,timezone,frequency,weekday,"
        "days,sources,like,like_threshold,status"
    )
    assert (
        lines[1] == "ada@example.org,Ada,,,,,,,,,,arxiv-ml;neuro,2502.04321;2503.01234,0.3,active"
    )
    assert lines[2] == "bob@example.org,Bob,,,,,,,,,,,,,active"
    assert lines[3] == "zoe@example.org,Zoë,,,,,,,,,,hf,doi:10.1000/abc,0.75,active"
    again = digest(site, "subscribers", "import", "-", "--format", "csv", input=csv_out)
    assert again.exit_code == 0, again.output
    assert "added 0, updated 0, unchanged 3, kept unsubscribed 0, rejected 0" in again.stdout
    assert stored(db_url) == subs
    jsonl_out = exported(site, "jsonl").stdout
    assert json.loads(jsonl_out.splitlines()[0])["like"] == ["2502.04321", "2503.01234"]
    back = roster.read(jsonl_out, "jsonl", sources=["hf", "arxiv-ml", "neuro"])
    assert back.errors == ()
    assert [(s.email, s.sources, s.like, s.like_threshold) for s in back.subscribers] == [
        ("ada@example.org", ("arxiv-ml", "neuro"), ("2502.04321", "2503.01234"), 0.3),
        ("bob@example.org", None, (), None),
        ("zoe@example.org", ("hf",), ("doi:10.1000/abc",), 0.75),
    ]


@pytest.mark.parametrize(
    ("row", "errors"),
    [
        ({"sources": ["hf", "neuro"], "like": "2503.01234;hep-th/9901001v2"}, []),
        ({"sources": "hf; neuro", "like": ["2503.01234"], "like_threshold": "0.5"}, []),
        ({"sources": [], "like": [], "like_threshold": None}, []),
        ({"sources": "Neuro"}, ['line 1: sources: "Neuro": expected lower-case letters,'
                                ' digits or -']),
        ({"sources": {"hf": True}}, ["line 1: sources: expected a list of source names"]),
        ({"like": [1234]}, ["line 1: like: expected a list of papers"]),
        ({"like_threshold": True}, ["line 1: like_threshold: \"true\": expected a number 0-1"]),
        ({"like_threshold": "x"}, ['line 1: like_threshold: "x": expected a number 0-1']),
    ],
)  # fmt: skip
def test_jsonl_rows_take_lists_or_strings(row: dict[str, object], errors: list[str]) -> None:
    read = roster.read(
        json.dumps({"email": "ada@example.org", **row}) + "\n", "jsonl", sources=["hf", "neuro"]
    )
    assert [str(e) for e in read.errors] == errors
    assert len(read.subscribers) == (0 if errors else 1)


def test_without_configured_names_any_well_formed_name_is_read() -> None:
    read = roster.read("email,sources\nada@example.org,somewhere\n", "csv")
    assert read.errors == () and read.subscribers[0].sources == ("somewhere",)


def test_a_file_without_the_columns_leaves_sources_and_threshold_alone(
    site: Path, db_url: str
) -> None:
    digest(
        site, "subscribers", "add", "ada@example.org", "--source", "hf", "--like-threshold", ".4"
    )
    plain = digest(site, "subscribers", "import", "-", "--format", "jsonl",
                   input='{"email": "ada@example.org", "name": "Ada B"}\n')  # fmt: skip
    assert "updated 1" in plain.stdout, plain.output
    ada = stored(db_url)["ada@example.org"]
    assert (ada.name, ada.sources, ada.like_threshold) == ("Ada B", ("hf",), 0.4)
    cleared = digest(site, "subscribers", "import", "-", "--format", "csv",
                     input="email,name,sources\nada@example.org,Ada B,\n")  # fmt: skip
    assert "updated 1" in cleared.stdout, cleared.output
    ada = stored(db_url)["ada@example.org"]
    assert (ada.sources, ada.like_threshold) == (None, None)  # the file gave both: empty
