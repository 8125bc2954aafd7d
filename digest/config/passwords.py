"""Passwords named by the config (``smtp.password_env``, ``mailbox.password_env``) and read
from the environment when they are needed, never from the file."""

from __future__ import annotations

import os

from digest.errors import ConfigError, ConfigProblem


def env_password(key: str, variable: str, username: str | None) -> str:
    """The value of the environment variable ``variable`` that the setting ``key`` names.

    Raises :class:`ConfigError` naming ``key`` and the variable when it is unset or empty,
    with a hint to export the password of ``username``.
    """
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            [
                ConfigProblem(
                    key,
                    f"environment variable {variable} is not set",
                    hint=f"export {variable}=... with the password of {username}",
                )
            ]
        )
    return value
