"""CLI: the ``digest`` command; turns errors into words and exit codes.

``main`` (the command groups), ``demo`` (the demo site). The top layer: may import anything.
"""

from digest.cli.main import (
    cli,
    main,
)

__all__ = [
    "cli",
    "main",
]
