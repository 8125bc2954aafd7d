"""``digest subscribers like|dislike|unlike|library|show`` on a real site, and a liked or
disliked paper never sent: by the CLI, the config's ``like`` lists or an import, in a
real ``digest run`` (and its dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.listings import write_days
from tests.support.mime import body_of
from tests.support.site import DAYS, config_text, digest, outbox, write_site

FIXTURES = Path(__file__).parent / "fixtures" / "library"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The operator's site of tests/support/site.py, and grace, who reads diffusion."""
    write_site(tmp_path)
    added = digest(tmp_path, "subscribers", "add", "grace@example.org", "--keyword", "diffusion")
    assert added.exit_code == 0, added.output
    return tmp_path


def texts(site: Path, to: str) -> list[str]:
    return [body_of(m, "plain") for m in outbox(site) if to in m["To"]]


def test_like_dislike_unlike_say_what_they_recorded(site: Path) -> None:
    liked = digest(site, "subscribers", "like", "grace@example.org", "2511.00003v2", "10.1000/X.1")
    assert liked.exit_code == 0, liked.output
    assert liked.stdout.splitlines() == [
        "like 2511.00003v2: recorded (2511.00003: not stored yet, it counts when the paper"
        " arrives)",
        "like 10.1000/X.1: recorded (doi:10.1000/x.1: not stored yet, it counts when the paper"
        " arrives)",
    ]
    assert digest(site, "run", "--date", "2026-11-16").exit_code == 0  # the papers arrive

    again = digest(site, "subscribers", "like", "grace@example.org", "arxiv.org/abs/2511.00003")
    assert again.stdout.splitlines() == [
        "like arxiv.org/abs/2511.00003: already recorded (2511.00003: Protein Folding with Graphs)"
    ]
    turned = digest(site, "subscribers", "dislike", "grace@example.org", "2511.00003")
    assert turned.exit_code == 0, turned.output
    assert turned.stdout.splitlines() == [
        "dislike 2511.00003: recorded (it was a like before) (2511.00003: Protein Folding with"
        " Graphs)"
    ]
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    start = lines.index("likes:      1 liked, 1 disliked")
    assert lines[start + 1 :] == [
        "  like     doi:10.1000/x.1  (no title)  (cli)",
        "  dislike  2511.00003  Protein Folding with Graphs  (cli)",
    ]
    gone = digest(site, "subscribers", "unlike", "grace@example.org", "2511.00003", "2511.00002")
    assert gone.exit_code == 0, gone.output
    assert gone.stdout.splitlines() == [
        "unlike 2511.00003: removed",
        "unlike 2511.00002: was neither liked nor disliked",
    ]
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert "likes:      1 liked, 0 disliked" in shown.stdout


def test_a_subscriber_with_no_likes_is_shown_so(site: Path) -> None:
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert shown.stdout.splitlines()[-1] == "likes:      (none)"


def test_an_unusable_id_is_an_error_naming_it_and_the_others_are_recorded(site: Path) -> None:
    result = digest(
        site, "subscribers", "like", "grace@example.org", "my favourite paper", "2511.00001"
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: like my favourite paper: not an arXiv id, a DOI")
    assert "like 2511.00001: recorded" in result.stdout
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert "likes:      1 liked, 0 disliked" in shown.stdout


@pytest.mark.parametrize("command", ["like", "dislike", "unlike"])
def test_an_unknown_subscriber_is_exit_1_with_a_clear_error(site: Path, command: str) -> None:
    result = digest(site, "subscribers", command, "nobody@example.org", "2511.00001")
    assert result.exit_code == 1
    assert "error: no subscriber nobody@example.org" in result.stderr
    assert "Traceback" not in result.output


def test_ids_are_required(site: Path) -> None:
    result = digest(site, "subscribers", "like", "grace@example.org")
    assert result.exit_code == 2 and "Missing argument 'ID...'" in result.stderr


def test_a_liked_or_disliked_paper_is_never_sent(site: Path) -> None:
    # grace: diffusion, no exclude. She liked 00001 before it came and dislikes 00005.
    assert digest(site, "subscribers", "like", "grace@example.org", "2511.00001").exit_code == 0
    dry = digest(site, "run", "--dry-run", "--date", "2026-11-16")
    assert dry.exit_code == 0, dry.output
    assert "grace@example.org: 0 matched" in dry.stdout
    first = digest(site, "run", "--date", "2026-11-16")
    assert first.exit_code == 0, first.output
    assert "grace@example.org: 0 matched, nothing new" in first.stdout
    assert "ada@example.org: 1 matched, sent" in first.stdout  # ada did not like it
    assert texts(site, "grace@example.org") == []

    url = "https://arxiv.org/abs/2511.00005v1"
    assert digest(site, "subscribers", "dislike", "grace@example.org", url).exit_code == 0
    second = digest(site, "run", "--date", "2026-11-17")
    assert second.exit_code == 0, second.output
    (text,) = texts(site, "grace@example.org")
    assert "Medical Diffusion for MRI" in text
    assert "Quantized Diffusion" not in text  # disliked
    assert "Latent Space" not in text  # liked: 00001 is back as v2, still not sent


def test_the_configs_like_lists_are_recorded_and_never_sent(tmp_path: Path) -> None:
    listings = write_days(tmp_path / "listings", DAYS)
    config = tmp_path / "config.toml"
    config.write_text(config_text(listings, 'like = ["2511.00001v1"]\n'), "utf-8")
    run = digest(tmp_path, "run", "--date", "2026-11-16")
    assert run.exit_code == 0, run.output
    assert "ada@example.org: 0 matched, nothing new" in run.stdout
    shown = digest(tmp_path, "subscribers", "show", "ada@example.org")
    assert "  like     2511.00001  Diffusion Agents Plan in Latent Space  (config)" in (
        shown.stdout
    )
    # taken out of the config: the like goes with it (it was the config's)
    config.write_text(config_text(listings), "utf-8")
    assert digest(tmp_path, "schedule").exit_code == 0  # syncs as every pass does
    shown = digest(tmp_path, "subscribers", "show", "ada@example.org")
    assert "likes:      (none)" in shown.stdout


def test_an_imports_like_column_adds_likes(site: Path) -> None:
    people = site / "people.csv"
    people.write_text(
        "email,name,keywords,exclude,like\n"
        "grace@example.org,Grace,diffusion,,2511.00001; https://arxiv.org/abs/2511.00004v2\n"
        "hal@example.org,Hal,diffusion,,\n",
        "utf-8",
    )
    done = digest(site, "subscribers", "import", str(people))
    assert done.exit_code == 0, done.output
    assert f"{people}: likes added 2" in done.stdout
    again = digest(site, "subscribers", "import", str(people))
    assert "likes added" not in again.stdout  # nothing new
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert "  like     2511.00001  (no title)  (import)" in shown.stdout
    assert "  like     2511.00004  (no title)  (import)" in shown.stdout


def test_a_bibtex_library_imports_once_links_stored_papers_and_is_never_sent(
    site: Path,
) -> None:
    path = FIXTURES / "zotero.bib"
    first = digest(site, "subscribers", "library", "grace@example.org", str(path))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        "skipped zhou_empty_2023: neither a title nor an abstract",
        "skipped lindqvist_latent_2025-1: the same paper as lindqvist_latent_2025",
        f"{path}: imported 4 (0 linked to stored papers), already there 0, skipped 2",
    ]
    # 2511.00001 (the library's first entry) is the 16th's only diffusion paper
    run = digest(site, "run", "--date", "2026-11-16")
    assert run.exit_code == 0, run.output
    # the library's texts make similarity picks (tests/test_ranking_run), never 00001 itself
    sent = texts(site, "grace@example.org")
    words = [" ".join(text.split()) for text in sent]  # the reason may wrap
    assert words and all("Latent Space" not in t and "% similar)" in t for t in words)

    again = digest(site, "subscribers", "library", "grace@example.org", str(path))
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[-1] == (
        f"{path}: imported 0 (0 linked to stored papers), already there 4, skipped 2"
    )
    scholar = FIXTURES / "scholar.bib"  # its survey, 2511.00002, is stored now
    more = digest(site, "subscribers", "library", "grace@example.org", str(scholar))
    assert more.stdout.splitlines()[-1] == (
        f"{scholar}: imported 2 (1 linked to stored papers), already there 0, skipped 1"
    )
    shown = digest(site, "subscribers", "show", "grace@example.org")
    assert "likes:      6 liked, 0 disliked" in shown.stdout
    for line in (
        "  like     2511.00001  Diffusion Agents Plan in Latent Space  (library)",
        "  like     2511.00002  A Survey of Large Language Model Agents  (library)",
        "  like     doi:10.1162/tacl_a_00999  Grounded Generation with a Document Store: A"
        " Study of RAG in École Data  (library)",
        "  like     2510.04321  Protein Folding with Graph Transformers: α-helix and β-sheet"
        "  (library)",
    ):
        assert line in shown.stdout.splitlines()


def test_a_csl_json_library_from_stdin(site: Path) -> None:
    data = (FIXTURES / "zotero.json").read_bytes()
    result = digest(site, "subscribers", "library", "grace@example.org", "-", input=data)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "skipped empty-one: neither a title nor an abstract",
        "<stdin>: imported 4 (0 linked to stored papers), already there 0, skipped 1",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.txt", b"just notes\n", "notes.txt: no BibTeX entry found"),
        ("lib.json", b"{broken", "lib.json: not JSON (line 1"),
        ("items.json", json.dumps(["a"]).encode(), "items.json: not CSL JSON"),
    ],
)
def test_a_library_file_that_is_neither_is_exit_2_naming_it(
    site: Path, name: str, content: bytes, message: str
) -> None:
    path = site / name
    path.write_bytes(content)
    result = digest(site, "subscribers", "library", "grace@example.org", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {site / message}")
    assert "Traceback" not in result.output


def test_a_missing_library_file_is_exit_2_naming_it(site: Path) -> None:
    result = digest(site, "subscribers", "library", "grace@example.org", str(site / "no.bib"))
    assert result.exit_code == 2
    assert f"error: {site / 'no.bib'}: cannot read it: No such file or directory" in result.stderr
