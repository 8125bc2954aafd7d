"""``digest worker``: take batches of queued runs' digests (``run.queue``) and send them."""

from __future__ import annotations

import click

from digest.cli.shared import State, fail, run_async
from digest.errors import ConfigError, ConfigProblem


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Batches this process works on at once (each with smtp.concurrency connections).",
)
@click.option("--once", is_flag=True, help="Stop once the queue is empty (tests, cron).")
@click.pass_obj
def worker(state: State, concurrency: int, once: bool) -> None:
    """Send the digests of queued runs, batch after batch, until stopped (SIGTERM, Ctrl-C).

    Start any number of them, on any machines sharing the PostgreSQL database: each takes
    the next batch (match, render, send, mark sent). One killed mid-batch has its batch
    retried by another after run.heartbeat_timeout; one that loses the database stops
    taking work and reconnects.
    """
    cfg = state.config()
    if not cfg.run.queue or cfg.database.startswith("sqlite"):
        fail(
            ConfigError(
                [
                    ConfigProblem(
                        "run.queue",
                        "digest worker takes batches from the queue, which is off"
                        if not cfg.database.startswith("sqlite")
                        else "digest worker needs PostgreSQL: the queue lives in its database",
                        cfg.run.queue,
                        hint="set database to a postgresql+psycopg:// URL and run.queue = true",
                    )
                ],
                path=str(cfg.path) if cfg.path else None,
            )
        )
    from digest.run.queue import work  # procrastinate: the optional extra "queue"

    run_async(work(cfg, concurrency, wait=not once))
