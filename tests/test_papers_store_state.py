"""store.sources (SourceStates) on SQLite and PostgreSQL: each source's last fetch, its run of
failures, and the validators its conditional GETs send."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from digest.store import Store
from digest.store.source_state import MAX_ERROR, SourceState

T0 = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
DAY = date(2026, 11, 16)


def test_failures_count_in_a_row_and_a_success_ends_the_run(store: Store) -> None:
    states = store.sources
    assert states.states() == [] and states.state("arxiv-ml") is None
    states.record_failure("arxiv-ml", "arxiv", "HTTP 503 from export.arxiv.org", T0)
    states.record_failure("arxiv-ml", "arxiv", "timed out after 30 s", T0 + timedelta(hours=1))
    failing = states.state("arxiv-ml")
    assert failing == SourceState(
        name="arxiv-ml",
        kind="arxiv",
        first_seen=T0,
        last_fetch_at=T0 + timedelta(hours=1),
        last_error="timed out after 30 s",
        last_error_at=T0 + timedelta(hours=1),
        failures=2,
    )
    assert failing.failing
    states.record_ok("arxiv-ml", "arxiv", DAY, 1234, T0 + timedelta(hours=2))
    ok = states.state("arxiv-ml")
    assert ok is not None and not ok.failing
    assert (ok.failures, ok.last_count, ok.last_ok_at) == (0, 1234, T0 + timedelta(hours=2))
    # the last error stays, with its time, for `digest sources` to show
    assert (ok.last_error, ok.first_seen) == ("timed out after 30 s", T0)
    states.record_failure("arxiv-ml", "arxiv", "garbage", T0 + timedelta(hours=3))
    again = states.state("arxiv-ml")
    assert again is not None and again.failures == 1 and again.last_count == 1234


def test_every_source_is_listed_by_name_with_its_kind(store: Store) -> None:
    store.sources.record_ok("neuro", "feed", DAY, 12, T0)
    store.sources.record_ok("hf", "huggingface", DAY, 48, T0)
    store.sources.record_failure("arxiv-ml", "arxiv", "Ünïcödé <b>error</b> " + "x" * 5000, T0)
    got = store.sources.states()
    assert [(s.name, s.kind, s.last_count, s.failures) for s in got] == [
        ("arxiv-ml", "arxiv", None, 1),
        ("hf", "huggingface", 48, 0),
        ("neuro", "feed", 12, 0),
    ]
    error = got[0].last_error
    assert error is not None and len(error) == MAX_ERROR and error.startswith("Ünïcödé <b>")


def test_validators_of_one_url_and_of_several(store: Store) -> None:
    v = store.sources
    assert v.validators("arxiv-ml") == {}
    one = {"https://rss.arxiv.org/rss/cs.LG+stat.ML": ('W/"abc"', "Mon, 16 Nov 2026 05:00:00 GMT")}
    v.save_validators("arxiv-ml", one)
    assert v.validators("arxiv-ml") == one
    state = v.state("arxiv-ml")
    assert state is not None
    assert (state.validated_url, state.etag) == (
        "https://rss.arxiv.org/rss/cs.LG+stat.ML",
        'W/"abc"',
    )
    several = {
        "https://example.org/a.rss": ('"1"', None),
        "https://example.org/b.atom?x=1&y=2": (None, "Tue, 17 Nov 2026 05:00:00 GMT"),
    }
    v.save_validators("arxiv-ml", several)
    assert v.validators("arxiv-ml") == several
    v.save_validators("arxiv-ml", {"https://example.org/c.rss": (None, None)})  # nothing to keep
    assert v.validators("arxiv-ml") == {}
    # validators saved before the first fetch is recorded: the fetch fills the kind in
    v.save_validators("neuro", {"https://example.org/n.rss": ('"n"', None)})
    v.record_ok("neuro", "feed", DAY, 3, T0)
    neuro = v.state("neuro")
    assert neuro is not None and neuro.kind == "feed" and neuro.etag == '"n"'


def test_two_processes_recording_a_new_source_at_once_both_count(db_url: str) -> None:
    Store(db_url).close()
    together = threading.Barrier(2)
    errors: list[BaseException] = []

    def fail(n: int) -> None:
        with Store(db_url) as s:
            try:
                together.wait(timeout=30)
                s.sources.record_failure("hf", "huggingface", f"error {n}", T0)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

    threads = [threading.Thread(target=fail, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(db_url) as s:
        state = s.sources.state("hf")
        assert state is not None and state.failures == 2
