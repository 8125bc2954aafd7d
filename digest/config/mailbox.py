"""``[mailbox]``: the bounce mailbox ``digest mailbox`` reads (IMAP or a maildir folder).

Its keys are part of the one declaration (:data:`digest.config.settings.SETTINGS` includes
:data:`MAILBOX_SETTINGS`); they live here to keep ``settings`` within its size, with the
:class:`MailboxConfig` they fill and the checks of keys valid alone but not together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.config.checks import boolean, choice, integer, number, optional, text
from digest.config.declaration import Setting
from digest.config.passwords import env_password
from digest.errors import ConfigProblem

#: Hosts where an IMAP password may travel without TLS: it never leaves the machine.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: The longest local part ``mail.bounce_address`` may have: 64 (RFC 5321) less ``+`` and a
#: delivery token (see :mod:`digest.compose.verp`).
MAX_BOUNCE_LOCAL = 23


#: The declarations of ``[mailbox]``.
MAILBOX_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "mailbox.kind",
        optional(choice("imap", "maildir")),
        None,
        '"imap" or "maildir": where bounces, complaints and mailto unsubscribes arrive'
        " (the mailbox of mail.bounce_address); unset: no mailbox is read",
        example="imap",
    ),
    Setting(
        "mailbox.host",
        optional(text()),
        None,
        "IMAP server",
        example="imap.example.org",
    ),
    Setting(
        "mailbox.port",
        optional(integer(1, 65535)),
        None,
        'IMAP port; unset: 993 with security = "tls", else 143',
        example=993,
    ),
    Setting(
        "mailbox.security",
        choice("tls", "starttls", "none"),
        "tls",
        '"tls" (TLS from the first byte) | "starttls" | "none" (only on a loopback host)',
    ),
    Setting("mailbox.username", optional(text()), None, "IMAP user", example="bounces"),
    Setting(
        "mailbox.password_env",
        text(),
        "DIGEST_MAILBOX_PASSWORD",
        "the IMAP password comes from this environment variable, never from the file",
    ),
    Setting("mailbox.folder", text(), "INBOX", "IMAP folder to read"),
    Setting(
        "mailbox.move_to",
        optional(text()),
        None,
        "IMAP folder processed messages are moved to (for a server that keeps no keywords of"
        " our own); unset: they stay where they are, with the keyword $DigestProcessed",
        example="Processed",
    ),
    Setting(
        "mailbox.path",
        optional(text()),
        None,
        'for kind = "maildir": the folder holding new/ and cur/, as any MDA writes them',
        path=True,
        example="/var/mail/digest",
    ),
    Setting(
        "mailbox.every_minutes",
        integer(1, 24 * 60),
        5,
        "`digest serve` reads the mailbox this often",
    ),
    Setting("mailbox.timeout", number(1, 600), 30.0, "seconds before an IMAP step is abandoned"),
    Setting(
        "mailbox.verify_tls",
        boolean(),
        True,
        "verify the IMAP server's certificate (turn off only for a test server)",
    ),
)


@dataclass(frozen=True)
class MailboxConfig:
    """``[mailbox]``, checked; ``kind`` None: no mailbox."""

    kind: str | None = None
    host: str | None = None
    port: int | None = None
    security: str = "tls"
    username: str | None = None
    password_env: str = "DIGEST_MAILBOX_PASSWORD"
    folder: str = "INBOX"
    move_to: str | None = None
    path: Path | None = None
    every_minutes: int = 5
    timeout: float = 30.0
    verify_tls: bool = True

    @property
    def imap_port(self) -> int:
        """The port: as set, else 993 for TLS and 143 (IMAP, STARTTLS) otherwise."""
        if self.port is not None:
            return self.port
        return 993 if self.security == "tls" else 143

    def password(self) -> str:
        """The IMAP password from the environment; ConfigError naming the variable if unset."""
        return env_password("mailbox.password_env", self.password_env, self.username)


def mailbox_problems(values: Mapping[str, Any]) -> list[ConfigProblem]:
    """Problems of ``[mailbox]`` and ``mail.bounce_address`` keys valid alone but not
    together."""
    problems: list[ConfigProblem] = []
    bounce = values.get("mail.bounce_address")
    if bounce and len(bounce.rpartition("@")[0]) > MAX_BOUNCE_LOCAL:
        problems.append(
            ConfigProblem(
                "mail.bounce_address",
                f"the part before @ is longer than {MAX_BOUNCE_LOCAL} characters: with"
                " +<token> it would pass the 64 an address may have",
                bounce,
                hint="use a short one, such as bounces@example.org",
            )
        )
    kind = values.get("mailbox.kind")
    if kind and not bounce:
        problems.append(
            ConfigProblem(
                "mail.bounce_address",
                f"required with [mailbox] kind = {kind!r}: the mailbox reads what comes back to it",
                hint='set [mail] bounce_address = "bounces@example.org"',
            )
        )
    if kind == "maildir" and values.get("mailbox.path") is None:
        problems.append(ConfigProblem("mailbox.path", 'required when mailbox.kind = "maildir"'))
    if kind == "imap":
        for key in ("mailbox.host", "mailbox.username"):
            if not values.get(key):
                problems.append(ConfigProblem(key, 'required when mailbox.kind = "imap"'))
        host = values.get("mailbox.host")
        if values.get("mailbox.security") == "none" and host and host not in LOOPBACK:
            problems.append(
                ConfigProblem(
                    "mailbox.security",
                    f'is "none" but {host} is not this machine: the password would travel in clear',
                    hint='use "tls" (port 993) or "starttls" (port 143)',
                )
            )
    return problems
