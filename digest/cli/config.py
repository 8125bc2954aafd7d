"""``digest config``: check the config file, print the example one."""

from __future__ import annotations

import os
from pathlib import Path

import click

from digest.cli.shared import EXIT_USAGE, State, shown, shown_lines


@click.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("example")
def config_example() -> None:
    """Print a config file with every key, its default and its meaning."""
    from digest.config import example_toml

    click.echo(example_toml(), nl=False)


@config_group.command("check")
@click.pass_obj
def config_check(state: State) -> None:
    """Validate the config file and say what it sets up (exit 2 when something is wrong:
    a folder the runs must write, the database's folder, a password variable the config
    names, a template of templates_dir that does not compile). Sends and writes nothing."""
    from digest.run.preflight import preflight

    cfg = state.config()
    folders = [("feeds.dir", cfg.feeds.dir)]
    if not cfg.smtp.host:
        folders.append(("mail.outbox_dir", cfg.mail.outbox_dir))
    problems = [(key, path, why) for key, path in folders if (why := unwritable(path))]
    for key, path, why in problems:
        click.echo(shown(f"error: {key}: {path}: {why}"), err=True)
    if problems:
        click.echo(
            "hint: each must be a folder digest can create and write: make it (mkdir -p) and"
            " let the user running digest write to it, or point the key at another folder",
            err=True,
        )
    found = preflight(cfg)
    for problem in found:
        click.echo(shown_lines(f"error: {problem.key}: {problem.message}"), err=True)
        if problem.hint:
            click.echo(shown_lines(f"hint: {problem.hint}"), err=True)
    if problems or found:
        raise SystemExit(EXIT_USAGE)
    mail = (
        f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
        if cfg.smtp.host
        else f"outbox {cfg.mail.outbox_dir}"
    )
    click.echo(shown(f"{cfg.path}: ok; {len(cfg.subscribers)} subscribers, mail via {mail}"))
    for source in cfg.sources:
        click.echo(shown(f"  source {source.describe()}"))
        if source.enabled and source.path is not None and not source.path.exists():
            click.echo(
                shown(f"warning: source {source.name}: {source.path} does not exist"), err=True
            )


def unwritable(folder: Path) -> str | None:
    """Why the runs could not write into ``folder`` (made if missing), or None: a file in
    the way, or the nearest existing folder not writable by this user. Writes nothing."""
    path = folder
    while not path.exists():
        if path.parent == path:
            return None
        path = path.parent
    if not path.is_dir():
        return "not a folder" if path == folder else f"{path} is a file, not a folder"
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable by this user" if path == folder else f"{path} is not writable"
    return None
