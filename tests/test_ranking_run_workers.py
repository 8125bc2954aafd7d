"""Similarity ranking in a run of two worker processes over real SMTP (aiosmtpd): the parent
fits the model once before they start, each worker ranks its share with the stored model and
profiles, and every reader who likes papers gets their picks with the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from digest.models import Subscriber
from digest.store import Store
from tests.support.listings import write_days, write_site_config
from tests.support.site import digest
from tests.support.smtpd import SmtpServer
from tests.test_ranking_run import DAYS, GRAPH_PAPERS

READERS = 12


def _run(config: Path, day: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), "-v", "run", "--date", day],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def test_two_workers_rank_each_likers_digest(
    tmp_path: Path, smtp_server: Callable[..., SmtpServer], db_url: str
) -> None:
    server = smtp_server()
    write_days(tmp_path / "listings", DAYS)
    config = write_site_config(
        tmp_path,
        server,
        top=f'database = "{db_url}"',
        smtp="concurrency = 4",
        more="[run]\nworkers = 2",
    )
    with Store(db_url) as store:
        for i in range(READERS):  # odd: retrieval; even: no keywords
            keywords = ("retrieval",) if i % 2 else ()
            store.members.add_subscriber(
                Subscriber(email=f"reader{i:02d}@example.org", keywords=keywords)
            )
    _run(config, "2026-11-16")
    likers = [f"reader{i:02d}@example.org" for i in range(0, READERS, 3)]  # 0, 3, 6, 9
    for email in likers:
        done = digest(config, "subscribers", "like", email, "2511.10002")
        assert done.exit_code == 0, done.output
    before = len(server.messages)
    _, err = _run(config, "2026-11-17")
    assert "2 worker processes" in err
    day_two = server.messages[before:]
    assert sorted(m.rcpt_tos[0] for m in day_two) == sorted(
        f"reader{i:02d}@example.org" for i in range(READERS)
    )
    for message in day_two:
        to = message.rcpt_tos[0]
        body = message.message.get_body(("plain",))
        assert body is not None
        text = " ".join(body.get_content().split())
        if to in likers:
            assert all(title in text for title in GRAPH_PAPERS), to
            assert "% similar)" in text and 'Like "Graphs < Trees' in text, to
        else:  # no likes: keyword matches, or every paper, as always
            assert "% similar" not in text, to
    with Store(db_url) as store:
        ids = [s.id for s in store.members.subscribers("active") if s.email in likers]
        assert sorted(store.profiles.get_many([i for i in ids if i is not None])) == sorted(
            i for i in ids if i is not None
        )
        ranker = store.profiles.stored_ranker()
        assert ranker is not None and ranker.version == 1  # fitted once, by the parent
