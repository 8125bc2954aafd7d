"""The manage page's likes (issue 17): the subscriber's liked and disliked papers, each with
its own Remove button, and a library import (BibTeX or CSL JSON, multipart, bounded by
``web.max_body``) that reports what it imported and skipped; a subscriber of the
configuration manages their likes too. Forms as accessible as the others: labels, errors
tied to their input.

The web app runs in-process (``tests/test_web.py``'s ``app``: a real SQLite file with a
stored listing of 2611.00001-3, a real SMTP server).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from digest.models import Subscriber
from digest.store.like_rows import LikeEntry
from tests.test_feedback import csrf_of, likes
from tests.test_web import HOSTILE, OPERATOR_SUBSCRIBER, App, active, app

__all__ = ["app"]  # the web fixture of tests/test_web.py

LIBRARY = Path(__file__).parent / "fixtures" / "library"

#: An invented library: a stored paper by its arXiv URL, one by DOI only, one we do not
#: have with an abstract, an entry with no text, a second entry of the first paper, and a
#: title in TeX with accents.
OUR_BIB = r"""
@misc{okafor_proteins_2026,
  title = {Diffusion Models for Proteins},
  url = {https://arxiv.org/abs/2611.00001v2},
  author = {Okafor, Ada},
  year = {2026},
}
@article{nguyen_store_2025,
  title = {Grounded Generation with a Document Store},
  doi = {10.1000/GROUNDED.7},
  author = {Nguy{\~{e}}n, V{\u{a}}n},
  abstract = {We ground answers in documents.},
  year = {2025},
}
@misc{mueller_tokens_2026,
  title = {Token Budgets for M{\"u}ller's Transformers},
  eprint = {2612.04321},
  archivePrefix = {arXiv},
  author = {M{\"u}ller, J{\"o}rg},
  year = {2026},
}
@misc{empty_2020,
  author = {Nobody, A.},
  year = {2020},
}
@misc{okafor_proteins_2026_dup,
  title = {Diffusion models for proteins},
  eprint = {2611.00001},
  archivePrefix = {arXiv},
  author = {Okafor, Ada},
}
"""


async def manage_page(app: App, sub: Subscriber) -> httpx.Response:
    page = await app.client.get(app.link("manage", sub))
    assert page.status_code == 200, page.text
    return page


async def upload(app: App, sub: Subscriber, name: str, data: bytes) -> httpx.Response:
    """Choose ``data`` as the file ``name`` on the manage page and press Import."""
    page = await manage_page(app, sub)
    return await app.client.post(
        app.link("manage", sub),
        data={"csrf": csrf_of(page), "action": "library"},
        files={"library": (name, data, "application/octet-stream")},
    )


def like_rows(page: str) -> list[str]:
    """The titles the page lists, in order, each with its Remove button (or none)."""
    rows = re.findall(r"<li><form.*?</form></li>", page, re.S)
    out = []
    for row in rows:
        title = re.search(r'<span class="like-title">([^<]*)</span>', row)
        assert title, row
        removable = 'value="unlike"' in row
        out.append(f"{title.group(1)}{'' if removable else ' (fixed)'}")
    return out


async def test_the_page_lists_likes_and_dislikes_and_removes_one(app: App) -> None:
    ada = await active(app, "ada@example.org")
    assert ada.id is not None
    app.store.likes.add(ada.id, [LikeEntry("arxiv.org/abs/2611.00001v1")], "like", "email")
    app.store.likes.add(ada.id, [LikeEntry("2612.99999")], "like", "cli")  # not stored yet
    app.store.likes.add(ada.id, [LikeEntry("2611.00003")], "dislike", "email")  # hostile title
    page = await manage_page(app, ada)
    assert "Papers you like and dislike" in page.text
    assert "Liked (2)" in page.text and "Disliked (1)" in page.text
    assert like_rows(page.text) == [
        "Diffusion models for proteins",
        "2612.99999",  # no title yet: its key
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Diffusion &amp; &lt;b&gt;Bold&lt;/b&gt;"
        " evil",
    ]
    assert "\u202e" in HOSTILE and "\u202e" not in page.text
    assert "from an email" in page.text and "recorded by the site&#39;s operator" in page.text
    # Each Remove is its own form, outside the main one (forms do not nest).
    assert page.text.count('value="unlike"') == 3
    assert 'aria-label="Remove the like of “Diffusion models for proteins”"' in page.text
    removed = await app.client.post(
        app.link("manage", ada),
        data={"csrf": csrf_of(page), "action": "unlike", "key": "2611.00001"},
    )
    assert removed.status_code == 200
    assert "Removed “Diffusion models for proteins”." in removed.text
    assert likes(app, ada) == [("2612.99999", "like", "cli"), ("2611.00003", "dislike", "email")]
    assert like_rows(removed.text)[0] == "2612.99999"
    sub = app.store.members.subscriber("ada@example.org")
    assert sub is not None and sub.keywords == ada.keywords  # the rest of the form untouched


async def test_a_page_without_likes_says_none_yet_and_offers_the_import(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await manage_page(app, ada)
    assert "None yet." in page.text and like_rows(page.text) == []
    form = re.search(r'<form[^>]*enctype="multipart/form-data"[^>]*>.*?</form>', page.text, re.S)
    assert form and 'name="csrf"' in form.group(0)
    assert '<label for="library">' in form.group(0) and 'id="library"' in form.group(0)
    assert "up to 64 KB" in form.group(0)


async def test_a_bibtex_library_imports_as_likes_and_reports_what_it_skipped(app: App) -> None:
    ada = await active(app, "ada@example.org")
    done = await upload(app, ada, "my library.bib", OUR_BIB.encode())
    assert done.status_code == 200, done.text
    report = re.search(r'<div class="note" role="status" id="library-report">(.*?)</div>',
                       done.text, re.S)  # fmt: skip
    assert report, done.text
    assert (
        "my library.bib: imported 3 (1 linked to papers we have), already there 0, skipped 2."
    ) in report.group(1)
    assert "empty_2020: neither a title nor an abstract" in report.group(1)
    assert "okafor_proteins_2026_dup: the same paper as okafor_proteins_2026" in report.group(1)
    assert sorted(likes(app, ada)) == [
        ("2611.00001", "like", "web"),
        ("2612.04321", "like", "web"),
        ("doi:10.1000/grounded.7", "like", "web"),
    ]
    assert "Token Budgets for Müller&#39;s Transformers" in done.text  # listed with its title
    again = await upload(app, ada, "my library.bib", OUR_BIB.encode())
    assert "imported 0 (0 linked to papers we have), already there 3, skipped 2." in again.text
    assert len(likes(app, ada)) == 3


async def test_a_csl_json_library_imports_too(app: App) -> None:
    ada = await active(app, "ada@example.org")
    done = await upload(app, ada, "zotero.json", (LIBRARY / "zotero.json").read_bytes())
    assert done.status_code == 200 and "zotero.json: imported" in done.text
    imported = likes(app, ada)
    assert imported and all(origin == "web" for _, _, origin in imported)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.txt", (LIBRARY / "notes.txt").read_bytes(), "notes.txt: no BibTeX entry found"),
        ("broken.json", (LIBRARY / "broken.json").read_bytes(), "broken.json: not JSON"),
        ("latin1.bib", "@misc{k, title={Müller}}".encode("latin-1"), "latin1.bib: not UTF-8"),
        ("", b"", "Choose a BibTeX (.bib) or CSL JSON (.json) file to import."),
    ],
)
async def test_a_file_that_is_no_library_is_a_form_error_tied_to_the_input(
    app: App, name: str, data: bytes, message: str
) -> None:
    ada = await active(app, "ada@example.org")
    page = await upload(app, ada, name, data)
    assert page.status_code == 400
    tag = re.search(r'<input[^>]* id="library"[^>]*>', page.text)
    assert tag and 'aria-invalid="true"' in tag.group(0)
    assert 'aria-describedby="library-error"' in tag.group(0)
    error = re.search(r'<p class="error" id="library-error">([^<]*)</p>', page.text)
    assert error and message in error.group(1), page.text
    assert page.text.count('aria-invalid="true"') == 1
    assert likes(app, ada) == []


@pytest.mark.parametrize("app", ["[web]\nmax_body = 4096\n"], indirect=True)
async def test_a_library_past_web_max_body_is_refused_whole(app: App) -> None:
    ada = await active(app, "ada@example.org")
    page = await manage_page(app, ada)
    assert "up to 4 KB" in page.text
    big = (OUR_BIB * 10).encode()
    assert len(big) > 4096
    refused = await upload(app, ada, "big.bib", big)
    assert refused.status_code == 413 and "Traceback" not in refused.text
    assert likes(app, ada) == []
    fits = await upload(app, ada, "small.bib", OUR_BIB.encode())
    assert fits.status_code == 200 and len(likes(app, ada)) == 3


async def test_likes_actions_need_the_page_s_csrf_field(app: App) -> None:
    ada = await active(app, "ada@example.org")
    assert ada.id is not None
    app.store.likes.add(ada.id, [LikeEntry("2611.00001")], "like", "email")
    refused = await app.client.post(
        app.link("manage", ada), data={"action": "unlike", "key": "2611.00001"}
    )
    assert refused.status_code == 400
    no_field = await app.client.post(
        app.link("manage", ada),
        data={"action": "library"},
        files={"library": ("x.bib", OUR_BIB.encode(), "text/plain")},
    )
    assert no_field.status_code == 400
    assert likes(app, ada) == [("2611.00001", "like", "email")]


CONFIG_LIKES = OPERATOR_SUBSCRIBER + 'like = ["2611.00002"]\n'


@pytest.mark.parametrize("app", [CONFIG_LIKES], indirect=True)
async def test_a_subscriber_of_the_config_manages_their_own_likes(app: App) -> None:
    """Their queries and schedule are the operator's; their likes are theirs."""
    op = app.store.members.subscriber("op@example.org")
    assert op is not None and op.id is not None
    app.store.likes.sync_config(app.ctx.config.subscribers)  # as each pass does
    app.store.likes.add(op.id, [LikeEntry("2611.00001")], "like", "email")
    page = await manage_page(app, op)
    assert "managed by the operator" in page.text
    assert "These are yours to change" in page.text
    # The config's own like: no Remove (the next pass would add it back).
    assert like_rows(page.text) == ["A survey of robots (fixed)", "Diffusion models for proteins"]
    assert "set in the site&#39;s configuration: ask its operator" in page.text
    removed = await app.client.post(
        app.link("manage", op),
        data={"csrf": csrf_of(page), "action": "unlike", "key": "2611.00001"},
    )
    assert removed.status_code == 200 and "Removed" in removed.text
    imported = await upload(app, op, "lib.bib", OUR_BIB.encode())
    assert imported.status_code == 200 and "lib.bib: imported 3" in imported.text
    assert sorted(k for k, _, origin in likes(app, op) if origin == "web") == [
        "2611.00001",
        "2612.04321",
        "doi:10.1000/grounded.7",
    ]
    assert ("2611.00002", "like", "config") in likes(app, op)
    after = app.store.members.subscriber("op@example.org")
    assert after is not None and after.keywords == op.keywords
