"""The ``digest demo`` setup: a config over the bundled sample listings, in a folder of its own."""

from __future__ import annotations

import json
from pathlib import Path

from digest.files import write_atomic

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"

DEMO_CONFIG = """\
# Written by `digest demo`: the bundled sample listings, mail to ./outbox, feeds in ./public.
database = "sqlite:///demo.db"
timezone = "UTC"
base_url = "http://localhost:8000"

[source]
kind = "file"
path = {sample}

[mail]
from = "Paper Digest <digest@example.org>"
outbox_dir = "outbox"

[feeds]
dir = "public"
title = "Trending papers (demo)"
days = 14

[[subscribers]]
email = "ada@example.org"
name = "Ada"
keywords = ['"large language model"', "LLM", "agent*"]
exclude = ["medical"]
max_papers = 30

[[subscribers]]
email = "grace@example.org"
name = "Grace Müller"
keywords = ["diffusion", "title:quantiz*", '"mixture of experts"']

[[subscribers]]
email = "everything@example.org"
name = "Reads Everything"
keywords = []
max_papers = 10
"""


def write_demo_config(folder: Path) -> Path:
    """Write the demo's config.toml into ``folder`` and return its path."""
    path = folder / "config.toml"
    text = DEMO_CONFIG.format(sample=json.dumps(str(SAMPLE_DIR)))
    write_atomic(path, text.encode("utf-8"))
    return path
