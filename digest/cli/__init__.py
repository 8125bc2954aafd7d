"""CLI: the ``digest`` command; turns errors into words and exit codes.

``main`` (the root group, the list of commands, the entry point), ``shared`` (state, errors
into words and exit codes, option checks), one module per command group: ``run`` (run, send,
preview, feed), ``serve``, ``status`` (status, schedule), ``sources``, ``subscribers``,
``config``, ``db`` (the schema revision: upgrade, current), ``demo`` (the demo site and its
command). The top layer: may import anything.
"""

from digest.cli.main import cli, main

__all__ = [
    "cli",
    "main",
]
