"""Alembic's environment: revisions run on the connection ``digest.store.migrate`` hands
over (``config.attributes["connection"]``), inside the transaction it holds."""

from __future__ import annotations

from alembic import context

from digest.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "paper-digest's migrations run through digest.store.migrate (`digest db upgrade`),"
        " which passes its own connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters a table by copying it: later ALTERs need batches
    compare_server_default=True,
)
with context.begin_transaction():  # joins the caller's transaction
    context.run_migrations()
