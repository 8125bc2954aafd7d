"""The thin :class:`Store` the pipeline receives: it opens the database, makes sure of the
schema, and holds one repository per area."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from digest.store.bounces import Bounces
from digest.store.likes import Likes
from digest.store.limits import RateLimits
from digest.store.members import Members
from digest.store.migrate import upgrade_if_behind
from digest.store.outbox import Outbox
from digest.store.papers import Papers
from digest.store.profiles import Profiles
from digest.store.runs import RunLog
from digest.store.schema import open_engine
from digest.store.source_state import SourceStates
from digest.store.stats import Stats


class Store:
    """paper-digest's state over one engine, one repository per area: ``papers`` (papers
    and listings), ``members`` (subscribers), ``outbox`` (deliveries and claims),
    ``run_log`` (runs and meta keys), ``bounces`` (the bounce mailbox's record), ``limits``
    (the web's rate limits), ``stats`` (counts for the operator's overview). Raises
    :class:`StateError`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = open_engine(url)
        self.papers = Papers(self.engine)
        self.members = Members(self.engine)
        self.outbox = Outbox(self.engine)
        self.run_log = RunLog(self.engine)
        self.bounces = Bounces(self.engine)  # the bounce mailbox's record
        self.limits = RateLimits(self.engine)
        self.stats = Stats(self.engine)
        self.profiles = Profiles(self.engine)  # the similarity model and profiles
        self.sources = SourceStates(self.engine)  # each source's last fetch, error, validators
        self.likes = Likes(self.engine)  # liked and disliked papers
        try:
            upgrade_if_behind(self.engine)  # Alembic: a database that is behind is upgraded
        except BaseException:
            self.engine.dispose()  # no connection left open for the garbage collector
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
