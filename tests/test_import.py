"""``digest subscribers import`` and ``export`` on SQLite and PostgreSQL, through the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.models import Subscriber
from digest.store import ImportCounts, Store, subscribers

HEADER = "email,name,keywords,exclude,max_papers\n"


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Path:
    (tmp_path / "config.toml").write_text(f'database = "{db_url}"\n', "utf-8")
    return tmp_path


def digest(site: Path, *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(site / "config.toml"), *args], input=input)


def write(site: Path, name: str, text: str) -> str:
    path = site / name
    path.write_text(text, "utf-8")
    return str(path)


def people(n: int, start: int = 0, keyword: str = "diffusion") -> str:
    return HEADER + "".join(
        f'user{i}@example.org,"User {i}, Jr.",{keyword};llm agent*,survey,{i % 50 + 1}\n'
        for i in range(start, start + n)
    )


def stored(site: Path, db_url: str) -> dict[str, Subscriber]:
    with Store(db_url) as store:
        return {s.email: s for s in store.members.subscribers()}


def test_import_adds_everyone_and_says_so(site: Path, db_url: str) -> None:
    result = digest(site, "subscribers", "import", write(site, "p.csv", people(2000)))
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(
        "p.csv: added 2000, updated 0, unchanged 0, kept unsubscribed 0, rejected 0\n"
    )
    assert result.stderr == ""
    subs = stored(site, db_url)
    assert len(subs) == 2000
    ada = subs["user7@example.org"]
    assert (ada.name, ada.keywords, ada.exclude, ada.max_papers, ada.status) == (
        "User 7, Jr.",
        ("diffusion", "llm agent*"),
        ("survey",),
        8,
        "active",
    )
    assert len({s.token for s in subs.values()}) == 2000


def test_reimport_updates_and_never_duplicates(site: Path, db_url: str) -> None:
    digest(site, "subscribers", "import", write(site, "a.csv", people(300)))
    before = stored(site, db_url)
    # 100 changed, 100 the same, 100 new
    text = people(100, 0, keyword="protein") + people(200, 100).removeprefix(HEADER)
    text += people(100, 300).removeprefix(HEADER)
    result = digest(site, "subscribers", "import", write(site, "b.csv", text))
    assert result.exit_code == 0, result.output
    assert "added 100, updated 100, unchanged 200, kept unsubscribed 0, rejected 0" in (
        result.stdout
    )
    after = stored(site, db_url)
    assert len(after) == 400
    assert after["user5@example.org"].keywords == ("protein", "llm agent*")
    for email, old in before.items():
        assert (after[email].id, after[email].token) == (old.id, old.token)


def test_unsubscribed_and_suspended_people_stay_so(site: Path, db_url: str) -> None:
    digest(site, "subscribers", "import", write(site, "a.csv", people(3)))
    assert digest(site, "subscribers", "remove", "user0@example.org").exit_code == 0
    with Store(db_url) as store, store.engine.begin() as conn:
        conn.execute(
            sa.update(subscribers)
            .where(subscribers.c.email == "user1@example.org")
            .values(status="suspended", status_reason="bounced", hard_bounces=3)
        )
    result = digest(site, "subscribers", "import", write(site, "b.csv", people(3, 0, "x")))
    assert result.exit_code == 0, result.output
    assert "added 0, updated 1, unchanged 0, kept unsubscribed 2, rejected 0" in result.stdout
    subs = stored(site, db_url)
    assert [subs[f"user{i}@example.org"].status for i in range(3)] == [
        "unsubscribed",
        "suspended",
        "active",
    ]
    assert subs["user1@example.org"].hard_bounces == 3
    assert subs["user0@example.org"].keywords == ("x", "llm agent*")  # fields still updated


def test_some_rows_rejected_exit_1_and_the_rest_imported(site: Path, db_url: str) -> None:
    text = (
        people(5) + "nobody,N,,,\n" + "z@example.org,Z,(a OR b,,\n" + "user1@example.org,Again,,,\n"
    )
    result = digest(site, "subscribers", "import", write(site, "p.csv", text))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'line 7: email: "nobody": expected an email address'
        " (An email address must have an @-sign.)",
        'line 8: keywords: "(a OR b": unclosed parenthesis at 0',
        "warning: line 9: user1@example.org also on line 3; the later line wins",
    ]
    assert "added 5, updated 0, unchanged 0, kept unsubscribed 0, rejected 2" in result.stdout
    subs = stored(site, db_url)
    assert len(subs) == 5 and subs["user1@example.org"].name == "Again"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.csv", b"emial,name\na@example.org,A\n", 'unknown column(s) "emial"'),
        ("p.csv", b"name\nA\n", "no email column"),
        ("p.csv", b"", "no header line"),
        ("p.csv", b"email\n\xff@example.org\n", "line 2: not UTF-8 text"),
        ("p.txt", b"email\n", "cannot tell the format of"),
    ],
)
def test_unusable_file_exit_2_and_nothing_imported(
    site: Path, db_url: str, name: str, content: bytes, message: str
) -> None:
    (site / name).write_bytes(content)
    result = digest(site, "subscribers", "import", str(site / name))
    assert result.exit_code == 2
    assert message in result.stderr
    assert stored(site, db_url) == {}


def test_missing_file_exit_2(site: Path) -> None:
    result = digest(site, "subscribers", "import", str(site / "nope.csv"))
    assert result.exit_code == 2
    assert "nope.csv: cannot read it: No such file or directory" in result.stderr


def test_stdin_needs_a_format_and_reads_jsonl(site: Path, db_url: str) -> None:
    lines = json.dumps({"email": "ada@example.org", "keywords": ["a;b", "c"]}) + "\n"
    assert digest(site, "subscribers", "import", "-", input=lines).exit_code == 2
    result = digest(site, "subscribers", "import", "-", "--format", "jsonl", input=lines)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<stdin>: added 1,")
    assert stored(site, db_url)["ada@example.org"].keywords == ("a;b", "c")


def test_export_round_trips_through_import(site: Path, db_url: str) -> None:
    digest(site, "subscribers", "import", write(site, "p.csv", people(1500)))
    digest(site, "subscribers", "remove", "user3@example.org")
    before = stored(site, db_url)
    exported = digest(site, "subscribers", "export", "--all")
    assert exported.exit_code == 0, exported.output
    lines = exported.stdout.splitlines()
    assert lines[0] == (
        "email,name,keywords,exclude,max_papers,abstract,send_at,timezone,frequency,weekday,"
        "days,sources,like,like_threshold,status"
    )
    assert lines[1] == (
        'user0@example.org,"User 0, Jr.",diffusion;llm agent*,survey,1,,,,,,,,,,active'
    )
    assert lines[4].endswith(",unsubscribed") and len(lines) == 1501
    again = digest(site, "subscribers", "import", "-", "--format", "csv", input=exported.stdout)
    assert "added 0, updated 0, unchanged 1499, kept unsubscribed 1, rejected 0" in again.stdout
    assert stored(site, db_url) == before


def test_export_jsonl_to_a_file_and_into_another_database(
    site: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    digest(site, "subscribers", "import", write(site, "p.csv", people(40)))
    digest(site, "subscribers", "add", "semi@example.org", "--keyword", "a;b")
    out = site / "out" / "all.jsonl"
    result = digest(site, "subscribers", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}: 41 subscribers\n"
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert rows[0] == {
        "email": "user0@example.org",
        "name": "User 0, Jr.",
        "keywords": ["diffusion", "llm agent*"],
        "exclude": ["survey"],
        "max_papers": 1,
        "abstract": None,
        "send_at": None,
        "timezone": None,
        "frequency": None,
        "weekday": None,
        "days": None,
        "sources": None,
        "like": [],
        "like_threshold": None,
        "status": "active",
    }
    other = tmp_path_factory.mktemp("other")
    (other / "config.toml").write_text('database = "sqlite:///other.db"\n', "utf-8")
    assert digest(other, "subscribers", "import", str(out)).exit_code == 0
    with Store(f"sqlite:///{other / 'other.db'}") as store:
        copied = [
            (s.email, s.name, s.keywords, s.exclude, s.max_papers)
            for s in store.members.subscribers()
        ]
    original = stored(site, db_url).values()
    assert copied == [(s.email, s.name, s.keywords, s.exclude, s.max_papers) for s in original]


def test_csv_export_warns_about_a_query_it_cannot_carry(site: Path) -> None:
    digest(site, "subscribers", "add", "semi@example.org", "--keyword", "a;b")
    result = digest(site, "subscribers", "export")
    assert result.exit_code == 0
    assert "warning: semi@example.org: the query 'a;b' has a ';'" in result.stderr


def test_store_import_in_batches_counts_and_dedups(db_url: str) -> None:
    subs = [Subscriber(email=f"u{i}@example.org", name=f"U{i}") for i in range(23)]
    with Store(db_url) as store:
        assert store.members.import_subscribers(subs, batch=5) == ImportCounts(added=23)
        changed = [*subs[:5], Subscriber(email="u3@example.org", name="New"), *subs[5:]]
        counts = store.members.import_subscribers(changed, batch=7)
        assert counts == ImportCounts(updated=1, unchanged=22)
        assert [s.email for s in store.members.iter_subscribers(batch=4)] == [s.email for s in subs]
        assert store.members.subscriber("u3@example.org").name == "New"  # type: ignore[union-attr]


def set_status(db_url: str, **status: str) -> None:
    """``user0="pending"``: put each user in a state the CLI cannot (a web request, a bounce)."""
    with Store(db_url) as store, store.engine.begin() as conn:
        for user, state in status.items():
            conn.execute(
                sa.update(subscribers)
                .where(subscribers.c.email == f"{user}@example.org")
                .values(status=state)
            )


def test_export_leaves_out_pending_unsubscribed_and_suspended_unless_all(
    site: Path, db_url: str
) -> None:
    digest(site, "subscribers", "import", write(site, "p.csv", people(5)))
    set_status(db_url, user0="pending", user1="unsubscribed", user2="suspended", user3="paused")
    out = site / "known.csv"
    result = digest(site, "subscribers", "export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{out}: 2 subscribers (3 pending, unsubscribed or suspended left out: --all adds them)\n"
    )
    rows = out.read_text("utf-8").splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["user3@example.org", "user4@example.org"]
    assert [row.rsplit(",", 1)[1] for row in rows] == ["paused", "active"]

    everyone = digest(site, "subscribers", "export", "--all", "--format", "jsonl")
    statuses = [json.loads(line)["status"] for line in everyone.stdout.splitlines()]
    assert statuses == ["pending", "unsubscribed", "suspended", "paused", "active"]


FORMULAS = {
    "=cmd@example.org": ('=HYPERLINK("http://evil.example","click")', "-2+3", "+x"),
    "-minus@example.org": ("@SUM(A1:A9)", "diffusion", "'=already quoted"),
    "plain@example.org": ("'s-Gravesande", "llm", "survey"),
}


def test_csv_export_neutralises_formulas_and_import_reads_them_back(
    site: Path, db_url: str
) -> None:
    for address, (name, keyword, exclude) in FORMULAS.items():
        added = digest(
            site, "subscribers", "add", f"--name={name}", f"--keyword={keyword}",
            f"--exclude={exclude}", "--", address,
        )  # fmt: skip
        assert added.exit_code == 0, added.output
    before = stored(site, db_url)
    exported = digest(site, "subscribers", "export")
    assert exported.exit_code == 0, exported.output
    cells = [cell for row in csv.reader(io.StringIO(exported.stdout)) for cell in row]
    # No cell a spreadsheet would run (OWASP CSV injection): each starts with ' instead.
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for cell in ("'=cmd@example.org", "'=HYPERLINK(\"http://evil.example\",\"click\")",
                 "'-2+3", "'+x", "'-minus@example.org", "'@SUM(A1:A9)", "''=already quoted",
                 "'s-Gravesande"):  # fmt: skip
        assert cell in cells

    other = site / "other"
    other.mkdir()
    (other / "config.toml").write_text('database = "sqlite:///other.db"\n', "utf-8")
    again = digest(other, "subscribers", "import", "-", "--format", "csv", input=exported.stdout)
    assert again.exit_code == 0, again.output
    with Store(f"sqlite:///{other / 'other.db'}") as store:
        copied = {s.email: (s.name, s.keywords, s.exclude) for s in store.members.subscribers()}
    assert copied == {a: (s.name, s.keywords, s.exclude) for a, s in before.items()}


def schedules(site: Path, db_url: str) -> dict[str, tuple[object, ...]]:
    return {
        email: (s.send_at, s.timezone, s.frequency, s.weekday, s.days)
        for email, s in stored(site, db_url).items()
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_moving_subscribers_to_another_instance_keeps_their_hour(
    site: Path, db_url: str, tmp_path_factory: pytest.TempPathFactory, fmt: str
) -> None:
    digest(
        site,
        "subscribers",
        "add",
        "ada@example.org",
        "--send-at",
        "06:30",
        "--timezone",
        "Asia/Tokyo",
        "--frequency",
        "weekly",
        "--weekday",
        "fri",
    )
    digest(site, "subscribers", "add", "bob@example.org", "--days", "mon,wed")
    digest(site, "subscribers", "add", "cy@example.org")
    out = site / f"all.{fmt}"
    assert digest(site, "subscribers", "export", "--out", str(out)).exit_code == 0
    other = tmp_path_factory.mktemp("other")
    (other / "config.toml").write_text('database = "sqlite:///other.db"\n', "utf-8")
    result = digest(other, "subscribers", "import", str(out))
    assert result.exit_code == 0, result.output
    moved = schedules(other, f"sqlite:///{other / 'other.db'}")
    assert moved == schedules(site, db_url)
    assert moved["ada@example.org"] == ("06:30", "Asia/Tokyo", "weekly", "fri", None)
    assert moved["bob@example.org"] == (None, None, None, None, ("mon", "wed"))


_SOON = datetime(2026, 12, 8, 5, 30, tzinfo=UTC)


def test_an_imported_schedule_replaces_the_stored_one_and_is_placed_again(
    site: Path, db_url: str
) -> None:
    digest(site, "subscribers", "add", "ada@example.org", "--send-at", "06:30")
    with Store(db_url) as store:
        ada = store.members.subscriber("ada@example.org")
        assert ada is not None and ada.id is not None
        store.members.set_next_sends([(ada.id, _SOON, None)], only_if_due=None)
    # A file without schedule columns leaves the schedule (and its placement) alone.
    result = digest(
        site, "subscribers", "import", write(site, "a.csv", "email,name\nada@example.org,Ada\n")
    )
    assert "updated 1," in result.stdout
    ada = stored(site, db_url)["ada@example.org"]
    assert (ada.send_at, ada.next_send_at) == ("06:30", _SOON)
    text = "email,send_at,timezone\nada@example.org,21:15,Europe/Berlin\n"
    result = digest(site, "subscribers", "import", write(site, "b.csv", text))
    assert "updated 1," in result.stdout, result.output
    ada = stored(site, db_url)["ada@example.org"]
    assert (ada.send_at, ada.timezone, ada.next_send_at) == ("21:15", "Europe/Berlin", None)


def test_bad_schedule_cells_are_row_errors(site: Path, db_url: str) -> None:
    text = (
        "email,send_at,timezone,frequency,weekday,days\n"
        "a@example.org,25:00,,,,\n"
        "b@example.org,,Europe/Berln,,,\n"
        "c@example.org,,,hourly,,\n"
        "d@example.org,,,weekly,fry,\n"
        "e@example.org,,,,,mon;tue\n"
        'f@example.org,07:05,UTC,daily,,"mon, fri"\n'
    )
    result = digest(site, "subscribers", "import", write(site, "s.csv", text))
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert [e.split(":")[0] for e in errors] == [f"line {n}" for n in range(2, 7)]
    assert errors[0].startswith('line 2: send_at: "25:00": expected a time of day')
    assert errors[1].startswith('line 3: timezone: "Europe/Berln": unknown time zone')
    assert errors[2] == 'line 4: frequency: "hourly": expected "daily" or "weekly"'
    assert errors[3].startswith('line 5: weekday: "fry": expected one of mon')
    assert errors[4].startswith('line 6: days: "mon;tue": ')
    f = stored(site, db_url)["f@example.org"]
    assert (f.send_at, f.timezone, f.frequency, f.days) == ("07:05", "UTC", "daily", ("mon", "fri"))
