"""``digest sources``: each source with its last fetch, its stored papers and its last error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from digest.cli.shared import State, at, guard, shown

if TYPE_CHECKING:
    from digest.run.source_health import SourceHealth

#: The columns of ``digest sources``, in order.
HEADER = ("NAME", "KIND", "ENABLED", "LAST FETCH", "LAST OK", "PAPERS", "FAILURES", "LAST ERROR")


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object per source in a list (the README documents the fields).",
)
@click.pass_obj
def sources(state: State, as_json: bool) -> None:
    """List each source: kind, enabled, last fetch and success, papers stored, failures in a
    row and the last error (a source the database knows but the config no longer names is
    shown as removed)."""
    from digest.run.source_health import sources_health, to_json

    cfg = state.config()
    with state.store() as store:
        found = guard(lambda: sources_health(cfg, store))
    if as_json:
        click.echo(json.dumps([to_json(h) for h in found], indent=2, ensure_ascii=False))
        return
    for line in source_lines(found):
        click.echo(line)


def source_lines(found: Sequence[SourceHealth]) -> list[str]:
    """The table: a header, then one line per source, columns aligned by two spaces; every
    value from outside (names of removed sources, errors) passed through :func:`shown`."""
    rows = [HEADER] + [_row(h) for h in found]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]


def _row(h: SourceHealth) -> tuple[str, ...]:
    enabled = "removed" if not h.configured else "yes" if h.enabled else "no"
    last_ok = at(h.last_ok_at) if h.last_ok_at else "never"
    if h.last_ok_at is not None and h.last_count is not None and not h.failures:
        quiet = ": weekend or holiday?" if h.kind == "arxiv" and h.last_count == 0 else ""
        last_ok += f" ({h.last_count} papers{quiet})"
    failures = str(h.failures)
    if h.runs_failed:
        failures += f" ({h.runs_failed} run(s))"
    error = "-"
    if h.last_error:
        error = f"{at(h.last_error_at)}: {' '.join(h.last_error.split())}"
    return (
        shown(h.name),
        shown(h.kind),
        enabled,
        at(h.last_fetch_at) if h.last_fetch_at else "never",
        last_ok,
        str(h.papers),
        failures,
        shown(error),
    )
