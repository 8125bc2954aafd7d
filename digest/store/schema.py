"""The schema: the tables over one ``metadata`` (``migrate`` makes and upgrades them),
opening the engine, and the transaction that turns SQLAlchemy's errors into StateError."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from digest.errors import StateError

T = TypeVar("T")

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: ``id`` (revision 0008) is the paper's small number, what the sent-state records: assigned
#: by the database on insert (the triggers of :data:`PAPERS_ID_DDL`), never given by the
#: code that saves papers.
papers = sa.Table(
    "papers",
    metadata,
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("id", sa.Integer),
    sa.Column("arxiv_id", sa.String(64)),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("abstract", sa.Text, nullable=False, default=""),
    sa.Column("authors", sa.Text, nullable=False, default="[]"),
    sa.Column("upvotes", sa.Integer, nullable=False, default=0),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("extra", sa.Text, nullable=False, default="{}"),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_papers_id", "id", unique=True),
)

#: The ``meta`` row holding the largest paper id ever given on SQLite (revision 0009).
PAPERS_ID_HIGH = "papers_id_high"
#: What numbers new papers, by dialect, never giving a number twice (old sent-state may name
#: a pruned paper's id). SQLite: one more than the largest ever given (the ``meta`` row
#: :data:`PAPERS_ID_HIGH`, or the largest in use if greater), set just after the insert.
#: PostgreSQL: a sequence, read before the insert.
PAPERS_ID_DDL = {
    "sqlite": (
        "CREATE TRIGGER papers_id AFTER INSERT ON papers WHEN NEW.id IS NULL BEGIN"
        f" INSERT INTO meta (key, value) SELECT '{PAPERS_ID_HIGH}', coalesce(max(id), 0) + 1"
        " FROM papers WHERE true ON CONFLICT (key) DO UPDATE"
        " SET value = max(CAST(value AS INTEGER) + 1, CAST(excluded.value AS INTEGER));"
        " UPDATE papers SET id = (SELECT CAST(value AS INTEGER) FROM meta"
        f" WHERE key = '{PAPERS_ID_HIGH}') WHERE rowid = NEW.rowid; END",
    ),
    "postgresql": (
        "CREATE SEQUENCE IF NOT EXISTS papers_id_seq OWNED BY papers.id",
        "CREATE OR REPLACE FUNCTION papers_id() RETURNS trigger AS $$ BEGIN"
        " IF NEW.id IS NULL THEN NEW.id := nextval('papers_id_seq'); END IF;"
        " RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER papers_id BEFORE INSERT ON papers FOR EACH ROW"
        " EXECUTE FUNCTION papers_id()",
    ),
}
for _dialect, _statements in PAPERS_ID_DDL.items():
    for _statement in _statements:
        _ddl = sa.DDL(_statement)  # type: ignore[no-untyped-call]
        sa.event.listen(papers, "after_create", _ddl.execute_if(dialect=_dialect))

#: One row per (date, source) fetched (revision 0006 made ``source`` part of the key: it is
#: the source's configured name; older rows were named after their kind, "huggingface" or
#: "file"). A date fetched empty (a weekend) has a row with ``count`` 0; a date whose fetch
#: failed has none, so a later run fetches it again.
listings = sa.Table(
    "listings",
    metadata,
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

listing_papers = sa.Table(
    "listing_papers",
    metadata,
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("paper_key", sa.String(512), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_listing_papers_paper", "paper_key"),
)

#: Every identity a paper is known by (revision 0006; see ``digest.identity``): its arXiv
#: id, ``doi:…``, ``link:…``, ``title:…`` hash, and the key itself, each naming the key the
#: paper is stored under, so a paper met again under another identity stays one paper.
paper_aliases = sa.Table(
    "paper_aliases",
    metadata,
    sa.Column("alias", sa.String(512), primary_key=True),
    sa.Column("paper_key", sa.String(512), nullable=False),
    sa.Index("ix_paper_aliases_paper", "paper_key"),
)

#: What each configured source last did (revision 0006), for ``digest sources``, ``digest
#: status`` and conditional GET: the validators of the last 200 (``etag``, ``last_modified``
#: of the URL ``validated_url``).
source_state = sa.Table(
    "source_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_fetch_at", sa.DateTime(timezone=True)),
    sa.Column("last_ok_at", sa.DateTime(timezone=True)),
    sa.Column("last_count", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", sa.DateTime(timezone=True)),
    sa.Column("failures", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("validated_url", sa.Text),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("keywords", sa.Text, nullable=False, default="[]"),
    sa.Column("exclude", sa.Text, nullable=False, default="[]"),
    sa.Column("max_papers", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False, default="active"),
    sa.Column("status_reason", sa.String(32)),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    sa.Column("in_config", sa.Boolean, nullable=False, default=False),
    sa.Column("hard_bounces", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("send_at", sa.String(5)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("frequency", sa.String(8)),
    sa.Column("weekday", sa.String(3)),
    sa.Column("days", sa.String(32)),
    sa.Column("next_send_at", sa.DateTime(timezone=True)),
    sa.Column("covered_until", sa.Date),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
    # The pending web request a confirmation link may confirm (revision 0002): set anew by
    # each request, cleared by confirming; a link naming another nonce confirms nothing.
    sa.Column("confirm_nonce", sa.String(32)),
    # How much of each abstract their digests show (revision 0005): "full", "short" or
    # "none"; NULL: the configuration's mail.abstract.
    sa.Column("abstract", sa.String(8)),
    # The sources whose papers they want (revision 0006): a JSON list of source names;
    # NULL: every source.
    sa.Column("sources", sa.Text),
    # How similar to their likes a paper must be to be picked (revision 0007), in [0, 1];
    # NULL: the configuration's mail.like_threshold.
    sa.Column("like_threshold", sa.Float),
    sa.Index("ix_subscribers_due", "status", "next_send_at"),
)

#: One row per digest, carrying what it sent (revision 0008): ``papers`` the ``papers.id``
#: of its papers in display order as unsigned 32-bit integers (``digest.store.outbox_rows``
#: packs them), ``shown`` how many of them the email shows (the rest are "N more"). A failed
#: digest's papers are cleared (released for a later one). Only digests still to send are
#: indexed by status: the sent ones, nearly all, cost no index entry there. Revision 0009: the
#: Message-ID is found by a hash index (on PostgreSQL a hash of 4 bytes an entry instead of a
#: B-tree of the whole text; its ids are random, so unique without a constraint).
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("listing_date", sa.Date, nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("claimed_by", sa.Integer),  # runs.id of the run sending it (status "sending")
    sa.Column("claimed_at", sa.DateTime(timezone=True)),
    sa.Column("papers", sa.LargeBinary, nullable=False, default=b"", server_default=sa.text("''")),
    sa.Column("shown", sa.Integer, nullable=False, default=0, server_default="0"),
    # one partial index per status still to send: SQLite uses a partial index for
    # ``status = 'pending'`` only when its own condition is that equality
    sa.Index(
        "ix_deliveries_pending",
        "status",
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_deliveries_sending",
        "status",
        sqlite_where=sa.text("status = 'sending'"),
        postgresql_where=sa.text("status = 'sending'"),
    ),
    sa.Index("ix_deliveries_subscriber", "subscriber_id"),
    sa.Index("ix_deliveries_message_id", "message_id", postgresql_using="hash"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("outcome", sa.String(16), nullable=False),  # running, ok, empty, failed
    sa.Column("stage", sa.String(16)),  # where a failed run stopped: fetch, deliver
    sa.Column("error", sa.Text),
    sa.Column("fetched", sa.Integer, nullable=False, default=0),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("deferred", sa.Integer, nullable=False, default=0),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)

#: The live events of the web's rate limits (revision 0003): one row per counted event,
#: deleted once its window has passed; ``key`` is a hash of the limit's name and its key.
rate_events = sa.Table(
    "rate_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),  # seconds since the epoch
    sa.Index("ix_rate_events_key", "key", "expires"),
    sa.Index("ix_rate_events_expires", "expires"),
)

#: The messages of the bounce mailbox acted on (revision 0004), so none is acted on twice:
#: ``key`` is a hash of the message's Message-ID (see ``digest.mailbox.classify``), ``kind``
#: what it was (hard, soft, complaint, unsubscribe) and ``detail`` its status or reason.
mailbox_messages = sa.Table(
    "mailbox_messages",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subscriber_id", sa.Integer),
    sa.Column("delivery_id", sa.String(32)),
    sa.Column("detail", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_mailbox_messages_subscriber", "subscriber_id"),
)


#: A subscriber's liked and disliked papers (revision 0007): ``kind`` "like" or "dislike",
#: ``origin`` where it was recorded (cli, web, email, config, import, library; config and
#: import never remove the others). ``paper_key`` is a stored paper's key or, for a library
#: entry we do not have, its own identity; ``title`` and ``abstract`` are what the entry
#: gave (the text the ranker reads when the paper is not stored).
likes = sa.Table(
    "likes",
    metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("paper_key", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("abstract", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_likes_paper", "paper_key"),
)

#: The similarity ranker's fitted models (revision 0007): ``name`` (e.g. "tfidf"), an opaque
#: ``data`` blob the ranker reads back, ``version`` bumped at each refit (profiles made with
#: another version are stale).
ranker_models = sa.Table(
    "ranker_models",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("papers", sa.Integer, nullable=False),
    sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
)

#: Each subscriber's profile for a ranker (revision 0007): an opaque ``data`` blob made by
#: model ``name`` at ``version``, rebuilt when their likes change or the model is refitted.
profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def open_engine(url: str) -> Engine:
    """The engine for ``url`` (SQLite gets its pragmas on each connection); raises
    :class:`StateError` when the URL or its driver is unusable."""
    try:
        engine: Engine = sa.create_engine(url, future=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StateError(f"cannot open database {safe_url(url)}: {exc}", hint=db_hint(url)) from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def begin(engine: Engine) -> Transaction:
    """``with begin(engine) as conn``: one transaction, SQLAlchemy's errors as StateError."""
    return Transaction(engine)


class Transaction:
    """One transaction on ``engine``: SQLAlchemy errors leave it as :class:`StateError`
    (an :class:`IntegrityError` raised inside goes through, for the caller to retry)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ctx: Any = None

    def __enter__(self) -> Connection:
        try:
            self.ctx = self.engine.begin()
            conn: Connection = self.ctx.__enter__()
        except SQLAlchemyError as exc:
            raise StateError(
                f"cannot open database {self.engine.url!r}: {reason(exc)}",
                hint=db_hint(str(self.engine.url)),
            ) from exc
        return conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        where = safe_url(str(self.engine.url))
        try:
            self.ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as err:
            why = reason(err)
            raise StateError(
                f"database {where}: write failed: {why}", hint=_hint_for(where, why)
            ) from err
        if isinstance(exc, SQLAlchemyError) and not isinstance(exc, IntegrityError):
            why = reason(exc)
            raise StateError(f"database {where}: {why}", hint=_hint_for(where, why)) from exc


def safe_url(url: str) -> str:
    """The database URL with any password masked, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<database URL>"


def reason(exc: SQLAlchemyError) -> str:
    """The first line of what the database said (or of SQLAlchemy's message)."""
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


def _hint_for(url: str, reason: str) -> str:
    if "locked" in reason:
        return "another process holds a lock on the database; run again once it has finished"
    if "disk" in reason or "full" in reason:
        return "free some disk space where the database lives, then run again"
    return db_hint(url)


def db_hint(url: str) -> str:
    """What to check when the database at ``url`` cannot be opened."""
    if url.startswith("postgresql"):
        return (
            "is the PostgreSQL server running, and is psycopg installed"
            " (pip install 'paper-digest[postgres]')?"
        )
    return "check the database setting and that its folder exists and is writable"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def retried(attempt: Callable[[], T], what: str) -> T:
    """``attempt()``, done again when it collides with another run's rows (an
    :class:`IntegrityError`: the loser finds them there the next time); after three
    collisions, :class:`StateError` "cannot ``what``"."""
    for n in range(3):
        try:
            return attempt()
        except IntegrityError as exc:
            if n == 2:
                raise StateError(f"cannot {what}: {reason(exc)}") from exc
    raise AssertionError("unreachable")


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A time read back from the database, in UTC (SQLite gives it back naive)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
