"""Test sites: a ``config.toml`` over local listings, and ``digest`` run on it in-process.

``write_site(folder)`` makes the operator's site of tests/test_cli.py (three days of
listings, the outbox, feeds, ada with a name and an exclude); ``write_config(folder, db_url,
listings, server=...)`` the site of the delivery tests (a database URL, a real SMTP server or
the outbox, readers of ``diffusion``); ``digest(site, "run", ...)`` invokes the CLI on
either, and ``outbox(site)`` reads the mail it wrote to ``site/outbox``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from click.testing import CliRunner, Result

from digest.cli import cli
from tests.support.listings import item, write_days

#: The listings of :func:`write_site`, by date.
DAYS = {
    "2026-11-16": [
        item("2511.00001", "Diffusion Agents Plan in Latent Space", "Diffusion models plan."),
        item("2511.00002", "A Survey of Large Language Model Agents", "We survey LLM agents."),
        item("2511.00003", "Protein Folding with Graphs", "Graph networks fold proteins."),
    ],
    "2026-11-17": [
        # 00001 comes back (with a version suffix): never sent twice
        item("2511.00001v2", "Diffusion Agents Plan in Latent Space", "Diffusion models plan."),
        item("2511.00004", "Medical Diffusion for MRI", "Diffusion for medical imaging."),
        item("2511.00005", "Quantized Diffusion Transformers", "We quantize diffusion models."),
    ],
    "2026-11-18": [],
}


def config_text(listings: Path, extra: str = "") -> str:
    """The config of :func:`write_site` over ``listings``, with ``extra`` TOML at its end."""
    return f"""\
database = "sqlite:///digest.db"
timezone = "UTC"
base_url = "https://digest.example.org"

[source]
kind = "file"
path = "{listings}"

[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"

[feeds]
dir = "public"
title = "Trending papers"

[[subscribers]]
email = "ada@example.org"
name = "Ada"
keywords = ["diffusion"]
exclude = ["medical"]
{extra}"""


def write_site(folder: Path) -> Path:
    """``folder/config.toml`` over :data:`DAYS` in ``folder/listings``; returns ``folder``."""
    listings = write_days(folder / "listings", DAYS)
    (folder / "config.toml").write_text(config_text(listings), "utf-8")
    return folder


class _Server(Protocol):
    host: str
    port: int


def write_config(
    folder: Path,
    db_url: str,
    listings: Path,
    *,
    server: _Server | None = None,
    mail: str = "",
    smtp: str = "",
    more: str = "",
    readers: Sequence[str] = ("ada@example.org",),
) -> Path:
    """``folder/config.toml``: state at ``db_url``, listings from the folder ``listings`` (a
    ``file`` source), mail to ``server`` without TLS (None: no ``[smtp]`` section); ``mail``
    and ``smtp`` hold more keys of those sections and ``more`` further sections, as TOML
    text; each of ``readers`` subscribes to ``diffusion``."""
    section = ""
    if server is not None:
        section = f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n{smtp}'
    subscribers = "".join(
        f'[[subscribers]]\nemail = "{reader}"\nkeywords = ["diffusion"]\n' for reader in readers
    )
    path = folder / "config.toml"
    path.write_text(
        f"""database = "{db_url}"
[source]
kind = "file"
path = "{listings}"
[mail]
from = "Paper Digest <digest@example.org>"
{mail}
{section}
{more}
{subscribers}""",
        "utf-8",
    )
    return path


def outbox(site: Path) -> list[EmailMessage]:
    """The messages in ``site/outbox``, by file name (none when there is no such folder)."""
    files = sorted((site / "outbox").glob("*.eml")) if (site / "outbox").is_dir() else []
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]


def digest(site: Path, *args: str, **invoke: Any) -> Result:
    """``digest --config CONFIG ARGS`` in-process, where ``site`` is the config file or the
    folder holding ``config.toml``; ``invoke`` goes to :meth:`CliRunner.invoke` (``env``)."""
    config = site / "config.toml" if site.is_dir() else site
    return CliRunner().invoke(cli, ["--config", str(config), *args], **invoke)
