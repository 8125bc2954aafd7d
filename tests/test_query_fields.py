"""A query field that does not exist (``tilte:diffusion``, ``foo:bar``) is refused with a
suggestion wherever a query comes in: the CLI, the config file, ``subscribers import``, the
web form and its preview; a query stored before the rule still runs as it did."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from digest.models import Subscriber
from digest.store import Store
from tests.support.listings import write_days
from tests.support.site import DAYS, config_text, digest, write_site
from tests.test_web import App, active, app

__all__ = ["app"]  # the web fixture, imported for this module's tests


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


# -- the CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["subscribers", "add", "x@example.org", "--keyword", "tilte:diffusion"], "--keyword"),
        (["subscribers", "add", "x@example.org", "--exclude", "tilte:survey"], "--exclude"),
        (["send", "--to", "x@example.org", "--keywords", "tilte:diffusion"], "--keywords"),
        (["preview", "--keywords", "tilte:diffusion"], "--keywords"),
    ],
)
def test_the_cli_refuses_an_unknown_field_with_a_suggestion(
    site: Path, args: list[str], option: str
) -> None:
    result = digest(site, *args)
    assert result.exit_code == 2, result.output
    assert option in result.stderr
    assert "unknown field tilte:, did you mean title:?" in result.stderr
    assert "hint: the fields are title:, abstract:, author:" in result.stderr
    assert "Traceback" not in result.output
    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        assert store.members.subscriber("x@example.org") is None
    assert not (site / "outbox").exists()


def test_the_cli_names_the_fields_when_none_is_close(site: Path) -> None:
    result = digest(site, "subscribers", "add", "x@example.org", "--keyword", "llm foo:bar")
    assert result.exit_code == 2
    assert "at position 4: unknown field foo: (the fields are title:, abstract:, author:)" in (
        result.stderr
    )
    assert 'quote them: "foo:bar"' in result.stderr


def test_colons_that_are_text_still_work_in_the_cli(site: Path) -> None:
    for query in ('"foo:bar"', "C++:", "https://arxiv.org/abs/2511.00001", "title:diffusion"):
        added = digest(site, "subscribers", "add", "x@example.org", "--keyword", query)
        assert added.exit_code == 0, (query, added.output)


def test_a_config_subscriber_with_an_unknown_field_is_a_config_error(tmp_path: Path) -> None:
    listings = write_days(tmp_path / "listings", DAYS)
    text = config_text(listings).replace('keywords = ["diffusion"]', 'keywords = ["tilte:x"]')
    (tmp_path / "config.toml").write_text(text, "utf-8")
    result = digest(tmp_path, "config", "check")
    assert result.exit_code == 2, result.output
    assert "did you mean title:?" in result.stderr


# -- import ----------------------------------------------------------------------------------


def test_import_rejects_the_row_and_says_which_field_was_meant(site: Path) -> None:
    csv = "email,keywords,exclude\nok@example.org,diffusion,\nbad@example.org,tilte:diffusion,\n"
    (site / "people.csv").write_text(csv, "utf-8")
    lines = [
        {"email": "j1@example.org", "keywords": ["diffusion"]},
        {"email": "j2@example.org", "keywords": ["agents"], "exclude": ["foo:bar"]},
    ]
    (site / "people.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")

    result = digest(site, "subscribers", "import", str(site / "people.csv"))
    assert result.exit_code == 1, result.output
    assert 'line 3: keywords: "tilte:diffusion": unknown field tilte:, did you mean title:?' in (
        result.stderr
    )
    result = digest(site, "subscribers", "import", str(site / "people.jsonl"))
    assert result.exit_code == 1, result.output
    assert re.search(r"line 2: exclude: .*foo:bar.*unknown field foo:", result.stderr)
    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        found = {s.email for s in store.members.subscribers()}
    assert {"ok@example.org", "j1@example.org"} <= found
    assert not {"bad@example.org", "j2@example.org"} & found


# -- a query stored before the rule ----------------------------------------------------------


def test_a_stored_query_with_an_unknown_field_still_runs_as_before(site: Path) -> None:
    """Stored before fields were checked: read as the phrase it always was, never a failed
    run for everyone."""
    with Store(f"sqlite:///{site / 'digest.db'}") as store:
        store.members.add_subscriber(
            Subscriber(email="old@example.org", keywords=("diffusion", "foo:bar"))
        )
    result = digest(site, "run", "--date", "2026-11-16")
    assert result.exit_code == 0, result.output
    assert "old@example.org: 1 matched, sent" in result.stdout


# -- the web form and its preview ------------------------------------------------------------


async def test_the_subscribe_form_shows_the_suggestion_and_stores_nothing(app: App) -> None:
    page = await app.subscribe("ada@example.org", keywords="diffusion\ntilte:robots")
    assert page.status_code == 400, page.text
    assert "unknown field tilte:, did you mean title:?" in page.text
    assert app.store.members.subscriber("ada@example.org") is None
    assert app.server.messages == []


async def test_the_manage_form_shows_the_suggestion_and_changes_nothing(app: App) -> None:
    ada = await active(app, "ada@example.org")
    saved = await app.save(ada, keywords="robots", exclude="abstarct:survey", send_at="06:45")
    assert saved.status_code == 400, saved.text
    assert "unknown field abstarct:, did you mean abstract:?" in saved.text
    kept = app.store.members.subscriber("ada@example.org")
    assert kept is not None and kept.keywords == ("diffusion",) and kept.exclude == ()


async def test_the_live_preview_reports_the_unknown_field(app: App) -> None:
    bad = await app.client.get("/preview", params={"keywords": "autor:Okafor"})
    assert bad.status_code == 400
    assert "unknown field autor:, did you mean author:?" in bad.json()["error"]
