"""Small hand-made listings in the Hugging Face daily papers format, for tests.

``item("2511.00001", "Diffusion Agents", "We study ...")`` is one element of the API's list;
``write_days(folder, {"2026-11-16": [item(...), ...]})`` writes ``folder/2026-11-16.json``
files that a ``file`` source (or the listing server) serves; ``write_site_config`` writes
the ``config.toml`` of a test site reading them and mailing a test SMTP server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol


def item(
    arxiv_id: str | None,
    title: str,
    summary: str = "",
    *,
    authors: Sequence[str] = ("Ada Okafor", "Bo Li"),
    upvotes: int = 1,
    published: str = "2026-11-15T17:59:01.000Z",
    **paper_extra: Any,
) -> dict[str, Any]:
    """One listing element with the paper's fields and their top-level copies."""
    paper: dict[str, Any] = {
        "title": title,
        "summary": summary,
        "authors": [{"name": name, "hidden": False} for name in authors],
        "upvotes": upvotes,
        "publishedAt": published,
        **paper_extra,
    }
    if arxiv_id is not None:
        paper["id"] = arxiv_id
    return {
        "paper": paper,
        "title": title,
        "summary": summary,
        "publishedAt": published,
        "numComments": 0,
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png",
    }


def write_days(folder: Path, days: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """Write one ``DATE.json`` file per day into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for day, items in days.items():
        (folder / f"{day}.json").write_text(json.dumps(list(items), ensure_ascii=False), "utf-8")
    return folder


class _Server(Protocol):
    host: str
    port: int


def write_site_config(
    folder: Path, server: _Server, *, top: str = "", smtp: str = "", more: str = ""
) -> Path:
    """``folder/config.toml``: listings from ``folder/listings`` (a ``file`` source), mail to
    ``server``; ``top`` holds top-level keys, ``smtp`` more ``[smtp]`` keys and ``more``
    further sections, each as TOML text."""
    path = folder / "config.toml"
    path.write_text(
        f"""{top}
[source]
kind = "file"
path = "listings"
[smtp]
host = "{server.host}"
port = {server.port}
{smtp}
{more}
""",
        "utf-8",
    )
    return path
