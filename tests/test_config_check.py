"""``digest config check`` checks what it can without sending: the SMTP password's variable
is set when a username is, the SQLite database's folder is there and writable, the
operator's templates compile; and each problem says the value once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.site import digest, write_site

SMTP = '[smtp]\nhost = "mx.example.org"\nport = 587\nusername = "digest"\n'


def configure(site: Path, old: str, new: str) -> None:
    path = site / "config.toml"
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), "utf-8")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path)


def test_a_username_without_its_password_variable_is_an_error(site: Path) -> None:
    configure(site, "[feeds]", SMTP + "\n[feeds]")
    unset = digest(site, "config", "check", env={"DIGEST_SMTP_PASSWORD": None})
    assert unset.exit_code == 2, unset.output
    assert (
        "error: smtp.password_env: environment variable DIGEST_SMTP_PASSWORD is not set"
        in unset.stderr
    )
    assert "hint: export DIGEST_SMTP_PASSWORD=... with the password of digest" in unset.stderr
    assert "Traceback" not in unset.output
    given = digest(site, "config", "check", env={"DIGEST_SMTP_PASSWORD": "s3cret"})
    assert given.exit_code == 0, given.output
    assert "s3cret" not in given.output


def test_no_password_is_asked_without_a_username(site: Path) -> None:
    smtp = '[smtp]\nhost = "mx.example.org"\npassword_env = "NOT_SET_ANYWHERE"\n'
    configure(site, "[feeds]", smtp + "\n[feeds]")
    result = digest(site, "config", "check", env={"NOT_SET_ANYWHERE": None})
    assert result.exit_code == 0, result.output


def test_a_database_folder_that_does_not_exist_is_an_error(site: Path) -> None:
    configure(site, 'database = "sqlite:///digest.db"', 'database = "sqlite:///data/digest.db"')
    result = digest(site, "config", "check")
    assert result.exit_code == 2, result.output
    assert f"error: database: the folder {site / 'data'} does not exist" in result.stderr
    assert f"hint: make it (mkdir -p {site / 'data'})" in result.stderr
    assert not (site / "data").exists()  # checked, not made
    (site / "data").mkdir()
    assert digest(site, "config", "check").exit_code == 0


def test_a_database_under_a_file_is_an_error(site: Path) -> None:
    (site / "data").write_text("not a folder\n", "utf-8")
    configure(site, 'database = "sqlite:///digest.db"', 'database = "sqlite:///data/digest.db"')
    result = digest(site, "config", "check")
    assert result.exit_code == 2, result.output
    assert f"error: database: {site / 'data'} is a file" in result.stderr


def test_templates_that_do_not_compile_are_named_with_their_line(site: Path) -> None:
    folder = site / "templates"
    (folder / "email").mkdir(parents=True)
    (folder / "web").mkdir()
    (folder / "email" / "subject.txt").write_text("{{ count }} new\n{% if count %}\n", "utf-8")
    (folder / "web" / "base.html").write_text("<p>{{ a b }}</p>\n", "utf-8")
    (folder / "email" / "email.css").write_text("p { color: red }\n", "utf-8")  # not Jinja
    configure(site, 'timezone = "UTC"', 'timezone = "UTC"\ntemplates_dir = "templates"')
    result = digest(site, "config", "check")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith(
        f"error: templates_dir: {folder / 'email' / 'subject.txt'}, line 2:"
    )
    assert errors[1].startswith(f"error: templates_dir: {folder / 'web' / 'base.html'}, line 1:")
    (folder / "email" / "subject.txt").write_text("{{ count }} new papers\n", "utf-8")
    (folder / "web" / "base.html").unlink()
    fixed = digest(site, "config", "check")
    assert fixed.exit_code == 0, fixed.output


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            'timezone = "UTC"',
            'timezone = "UTC"\n[schedule]\nfrequency = "dayly"',
            'schedule.frequency: expected "daily" or "weekly", got "dayly"',
        ),
        (
            'exclude = ["medical"]',
            'exclude = ["medical"]\nsend_at = "25:00"',
            'subscribers[0].send_at: expected a time of day "HH:MM" (24-hour, e.g. "08:00"),'
            ' got "25:00"',
        ),
        (
            'keywords = ["diffusion"]',
            'keywords = ["diffusion", "(agents"]',
            'subscribers[0].keywords: invalid query "(agents" at position 0: unclosed parenthesis',
        ),
    ],
)
def test_each_problem_says_its_value_once(site: Path, old: str, new: str, said: str) -> None:
    configure(site, old, new)
    result = digest(site, "config", "check")
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.stderr.splitlines() if said in line]
    assert line.endswith(said)  # not ', got \'dayly\', got "dayly"'
