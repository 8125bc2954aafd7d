"""``digest config``: check the config file, print the example one."""

from __future__ import annotations

import click

from digest.cli.shared import State, shown


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
    """Validate the config file and say what it sets up."""
    cfg = state.config()
    mail = (
        f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
        if cfg.smtp.host
        else f"outbox {cfg.mail.outbox_dir}"
    )
    click.echo(shown(f"{cfg.path}: ok; {len(cfg.subscribers)} subscribers, mail via {mail}"))
