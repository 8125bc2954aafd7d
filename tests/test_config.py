"""The config loader: every key checked, every problem reported with key and value."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from digest.config import (
    SECTIONS,
    SETTINGS,
    SUBSCRIBER_SETTINGS,
    example_toml,
    find_config,
    load,
    parse,
)
from digest.config.sources import SOURCE_SETTINGS
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text))
    return [str(p) for p in info.value.problems]


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, ""))
    assert cfg.database == f"sqlite:///{tmp_path / 'digest.db'}"
    assert cfg.timezone == "UTC"
    assert cfg.source.kind == "huggingface"
    assert cfg.source.url == "https://huggingface.co/api/daily_papers"
    assert cfg.smtp.host is None
    assert cfg.mail.outbox_dir == tmp_path / "outbox"
    assert cfg.feeds.dir == tmp_path / "public"
    assert cfg.feeds.days == 14
    assert cfg.subscribers == ()


def test_issue_example_loads(tmp_path: Path) -> None:
    cfg = load(
        write(
            tmp_path,
            """
database = "sqlite:///digest.db"
timezone = "UTC"
base_url = "http://localhost:8000"
[source]
kind = "huggingface"
url = "https://huggingface.co/api/daily_papers"
timeout = 30
[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"
[smtp]
host = "smtp.example.org"
port = 587
security = "starttls"
username = "digest"
password_env = "DIGEST_SMTP_PASSWORD"
[feeds]
dir = "public"
title = "Trending papers"
days = 14
[[subscribers]]
email = "ada@example.org"
name = "Ada"
keywords = ['"large language model" AND survey', "diffusion"]
exclude = ["medical"]
max_papers = 30
""",
        )
    )
    assert cfg.smtp.host == "smtp.example.org"
    assert cfg.smtp.port == 587
    assert cfg.source.timeout == 30.0
    (ada,) = cfg.subscribers
    assert ada.email == "ada@example.org"
    assert ada.keywords == ('"large language model" AND survey', "diffusion")
    assert ada.exclude == ("medical",)
    assert ada.max_papers == 30


def test_port_message_names_key_and_value(tmp_path: Path) -> None:
    assert problems(tmp_path, '[smtp]\nport = "abc"\n') == [
        'smtp.port: expected an integer 1-65535, got "abc"'
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
timezone = "Mars/Olympus"
databse = "x"
[smtp]
port = 0
security = "ssl"
[feeds]
days = "many"
[[subscribers]]
email = "not-an-address"
[[subscribers]]
email = "b@example.org"
keywords = ['"unbalanced']
colour = "blue"
""",
    )
    text = "\n".join(found)
    assert "timezone: expected an IANA time zone name" in text
    assert 'databse: unknown key (did you mean "database"?)' in text
    assert "smtp.port: expected an integer 1-65535, got 0" in text
    assert 'smtp.security: expected one of "none", "starttls", "tls", got "ssl"' in text
    assert 'feeds.days: expected an integer 1-365, got "many"' in text
    assert "subscribers[0].email: expected an email address" in text
    assert "subscribers[1].keywords: invalid query" in text
    assert "subscribers[1].colour: unknown key" in text


def test_unknown_section_key_suggests(tmp_path: Path) -> None:
    assert problems(tmp_path, '[smtp]\nhots = "x"\n') == [
        'smtp.hots: unknown key (did you mean "host"?)'
    ]


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "database = \n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.toml")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    cfg = load(write(sub, '[feeds]\ndir = "../www"\n[mail]\noutbox_dir = "/var/mail/x"\n'))
    assert cfg.feeds.dir == tmp_path / "www"
    assert cfg.mail.outbox_dir == Path("/var/mail/x")
    assert cfg.database == f"sqlite:///{sub / 'digest.db'}"


def test_password_in_clear_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path, '[smtp]\nhost = "h.example.org"\nsecurity = "none"\nusername = "u"\n'
    )
    assert found[0].startswith('smtp.security: is "none" but smtp.username is set')


def test_missing_password_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_PW", raising=False)
    cfg = load(
        write(tmp_path, '[smtp]\nhost = "h.example.org"\nusername = "u"\npassword_env = "MY_PW"\n')
    )
    with pytest.raises(ConfigError, match="MY_PW is not set"):
        cfg.smtp.password()
    monkeypatch.setenv("MY_PW", "s3cret")
    assert cfg.smtp.password() == "s3cret"


def test_duplicate_subscriber(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[[subscribers]]\nemail = "a@example.org"\n[[subscribers]]\nemail = "A@example.org"\n',
    )
    assert any("duplicate subscriber" in p for p in found)


def test_file_source_needs_a_path(tmp_path: Path) -> None:
    assert problems(tmp_path, '[source]\nkind = "file"\n') == [
        'source.path: required when source.kind = "file"'
    ]


def test_find_config_order(tmp_path: Path) -> None:
    assert find_config("x.toml", {"DIGEST_CONFIG": "y.toml"}) == Path("x.toml")
    assert find_config(None, {"DIGEST_CONFIG": "y.toml"}) == Path("y.toml")
    assert find_config(None, {}) == Path("config.toml")


def test_example_file_is_generated_from_the_declaration() -> None:
    """config.example.toml cannot drift from SETTINGS: regenerate with `digest config example`."""
    assert (ROOT / "config.example.toml").read_text(encoding="utf-8") == example_toml()


def test_example_documents_every_key_and_loads(tmp_path: Path) -> None:
    text = example_toml()
    commented_key = re.compile(r"^# (\[smtp\]|\[mailbox\]|\[\[sources\]\]|[a-z_]+ = .*)$")
    uncommented = "\n".join(
        m.group(1) if (m := commented_key.match(line)) else line for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    keys = {k for k in data if not isinstance(data[k], dict | list)}
    keys |= {f"{s}.{k}" for s in SECTIONS for k in data.get(s, {})}
    assert keys == {s.key for s in SETTINGS}
    assert set(data["subscribers"][0]) == {s.key for s in SUBSCRIBER_SETTINGS}
    assert {k for entry in data["sources"] for k in entry} == {s.key for s in SOURCE_SETTINGS}
    assert [s.kind for s in parse(data, base=tmp_path).sources] == [
        "huggingface", "arxiv", "feed", "file"
    ]  # fmt: skip
    parse(tomllib.loads(text), base=tmp_path)
    parse(data, base=tmp_path)


@pytest.mark.parametrize(
    ("smtp", "security"),
    [
        ('host = "mx"\nport = 465', "tls"),
        ('host = "mx"\nport = 587', "starttls"),
        ('host = "mx"\nport = 2525', "none"),
        ('host = "mx"\nport = 25\nusername = "u"', "starttls"),
        ('host = "mx"\nport = 25\nsecurity = "tls"', "tls"),
    ],
)
def test_smtp_security_follows_the_port_unless_set(
    tmp_path: Path, smtp: str, security: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "pw")
    path = tmp_path / "config.toml"
    path.write_text(f"[smtp]\n{smtp}\n", "utf-8")
    assert load(path).smtp.security == security


def test_a_section_key_at_the_top_level_says_where_it_goes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"send_at": "07:00", "port": 25}, base=tmp_path)
    text = str(caught.value)
    assert "send_at: unknown key (put it in its section: [schedule] send_at = ...)" in text
    assert "[smtp] port" in text or "[web] port" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://[::1", "a host"),
        ("https://", "a host"),
        ("https://exa mple.org/api", "a space"),
        ("https://huggingface.co:http/api", "port"),
    ],
)
def test_a_source_url_a_request_cannot_go_to_is_a_config_error(
    tmp_path: Path, url: str, expected: str
) -> None:
    """Caught at load (and so by ``digest config check``), not as a traceback at fetch."""
    (problem,) = problems(tmp_path, f'[source]\nurl = "{url}"\n')
    assert "source.url" in problem and expected in problem
