"""What ``digest config check`` can find out without sending or writing anything: the
passwords the config names are in the environment, the SQLite database's folder is there and
writable, the operator's templates compile. Each finding is a :class:`ConfigProblem` naming
the key it concerns, with a hint."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import TemplateError, TemplateSyntaxError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from digest.compose import environment
from digest.config import Config
from digest.errors import ConfigError, ConfigProblem

#: The files of a templates folder that are Jinja templates (``email.css`` is read as it is,
#: ``subscribe.js`` served as it is).
TEMPLATE_SUFFIXES = (".html", ".htm", ".txt", ".xml")


def preflight(cfg: Config) -> list[ConfigProblem]:
    """Every problem a run would meet that the config alone does not show, in the order of
    the checks (passwords, database, templates); empty when there is none."""
    return [*password_problems(cfg), *database_problems(cfg.database), *template_problems(cfg)]


def password_problems(cfg: Config) -> list[ConfigProblem]:
    """The SMTP password (with ``smtp.host`` and ``smtp.username`` set) and the IMAP
    mailbox's, when their variables (``smtp.password_env``, ``mailbox.password_env``) are
    unset or empty."""
    problems: list[ConfigProblem] = []
    if cfg.smtp.host and cfg.smtp.username:
        try:
            cfg.smtp.password()
        except ConfigError as exc:
            problems.extend(exc.problems)
    if cfg.mailbox.kind == "imap":
        try:
            cfg.mailbox.password()
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def database_problems(url: str) -> list[ConfigProblem]:
    """For a SQLite file: its folder must exist (SQLite makes the file, not the folder) and
    be writable (the journal files sit beside it), and the file, if there, be writable.
    Other databases are checked by connecting, which ``digest db current`` does."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return []  # the config's own check reports it
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return []
    file = Path(str(parsed.database))
    folder = file.parent
    why = None
    if not folder.is_dir():
        why = (
            f"the folder {folder} does not exist" if not folder.exists() else f"{folder} is a file"
        )
        hint = f"make it (mkdir -p {folder}) or point database at another folder"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"the folder {folder} is not writable by this user"
        hint = "let the user running digest write to it, or point database at another folder"
    elif file.exists() and not os.access(file, os.R_OK | os.W_OK):
        why = f"{file} is not readable and writable by this user"
        hint = "let the user running digest read and write it"
    if why is None:
        return []
    return [ConfigProblem("database", why, url, hint=hint)]


def template_problems(cfg: Config) -> list[ConfigProblem]:
    """Each template of ``templates_dir`` (the operator's) that does not compile, with its
    file and line; a ``templates_dir`` that is not a folder."""
    folder = cfg.templates_dir
    if folder is None:
        return []
    if not folder.is_dir():
        return [
            ConfigProblem(
                "templates_dir",
                f"{folder} is not a folder",
                str(folder),
                hint="make it, or remove templates_dir to use the bundled templates",
            )
        ]
    env = environment(folder)
    problems = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix not in TEMPLATE_SUFFIXES:
            continue
        name = path.relative_to(folder).as_posix()
        try:
            env.get_template(name)
        except TemplateSyntaxError as exc:
            where = f"{path}, line {exc.lineno}" if exc.lineno else str(path)
            problems.append(ConfigProblem("templates_dir", f"{where}: {exc.message}", str(path)))
        except (TemplateError, OSError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem("templates_dir", f"{path}: {exc}", str(path)))
    return problems
