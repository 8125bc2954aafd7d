"""deploy/ stays consistent: Dockerfile, entrypoint, compose file, systemd unit and the image's
default config agree with each other and with the config loader. No Docker engine needed."""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from digest.config import SETTINGS, load
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

DATA_CONFIG = "/data/config.toml"  # $DIGEST_CONFIG in the image
DEFAULT_CONFIG = "/etc/paper-digest/config.toml"  # where the image's default config is
PORT = "8000"


# --- tiny parsers -------------------------------------------------------------------------


def dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        word, _, args = (current + line).partition(" ")
        instructions.append((word.upper(), " ".join(args.split())))
        current = ""
    assert not current, "Dockerfile ends with a continuation line"
    return instructions


def runtime_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the last stage: the image that runs."""
    last = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last:]


def args_of(instructions: list[tuple[str, str]], word: str) -> list[str]:
    return [args for w, args in instructions if w == word]


def _scalar(value: str, where: str) -> str:
    if value[:1] in "\"'":
        assert len(value) >= 2 and value[-1] == value[0], f"{where}: unterminated quote"
        return value[1:-1]
    assert value[:1] not in "[{&*!|>", f"{where}: only plain or quoted scalars are supported"
    assert " #" not in value, f"{where}: no trailing comments"
    return value


def yaml_subset(text: str) -> dict[str, Any]:
    """Parse the YAML subset compose.yaml is written in: block mappings, block sequences of
    scalars, plain or quoted scalars, whole-line comments. Anything else fails the test."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, Any]] = [(0, root)]  # (indent of the entries, container)
    open_key: tuple[dict[str, Any], str, int] | None = None  # "key:" awaiting a nested block
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"compose.yaml:{number}"
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        assert "\t" not in raw, f"{where}: tab"
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if open_key is not None:
            parent, key, key_indent = open_key
            open_key = None
            if indent > key_indent:
                parent[key] = [] if line.startswith("- ") else {}
                stack.append((indent, parent[key]))
        while stack[-1][0] > indent:
            stack.pop()
        level, container = stack[-1]
        assert level == indent, f"{where}: inconsistent indentation"
        if isinstance(container, list):
            assert line.startswith("- "), f"{where}: expected a list item"
            container.append(_scalar(line[2:].strip(), where))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+):(?:\s+(.*))?", line)
        assert match, f"{where}: expected key: value"
        key, value = match.group(1), match.group(2)
        assert key not in container, f"{where}: duplicate key {key}"
        if value is None:
            container[key] = None
            open_key = (container, key, indent)
        else:
            container[key] = _scalar(value, where)
    return root


def shutdown_timeout() -> float:
    """How long `digest serve` may take to stop after SIGTERM, by default."""
    for setting in SETTINGS:
        if setting.key == "web.shutdown_timeout":
            return float(setting.default)
    return 30.0  # the documented figure, until the setting exists


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)?", value.strip())
    assert match, f"not a duration: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker() -> list[tuple[str, str]]:
    return dockerfile((DEPLOY / "Dockerfile").read_text("utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml_subset((DEPLOY / "compose.yaml").read_text("utf-8"))


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((DEPLOY / "paper-digest.service").read_text("utf-8"))
    return parser


@pytest.fixture(scope="module")
def docker_toml() -> dict[str, Any]:
    return tomllib.loads((DEPLOY / "config.docker.toml").read_text("utf-8"))


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_runs_as_non_root_with_healthcheck(docker: list[tuple[str, str]]) -> None:
    assert docker[0] == ("FROM", "python:3.11-slim AS build")
    stage = runtime_stage(docker)
    assert stage[0][1].startswith("python:3.11-slim")
    users = args_of(stage, "USER")
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"

    (healthcheck,) = args_of(stage, "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert f"127.0.0.1:{PORT}/healthz" in healthcheck
    assert "urllib.request" in healthcheck
    assert "curl" not in healthcheck  # not in the slim image
    assert PORT in " ".join(args_of(stage, "EXPOSE")).split()
    assert args_of(stage, "STOPSIGNAL") == ["SIGTERM"]
    assert args_of(stage, "VOLUME") in (['["/data"]'], ["/data"])
    assert f"DIGEST_CONFIG={DATA_CONFIG}" in " ".join(args_of(stage, "ENV")).split()


def test_dockerfile_installs_postgres_extra_and_serves(docker: list[tuple[str, str]]) -> None:
    assert any("pip install '.[postgres,queue]'" in args for args in args_of(docker, "RUN"))
    stage = runtime_stage(docker)
    (cmd,) = args_of(stage, "CMD")
    assert json.loads(cmd) == ["digest", "serve", "--host", "0.0.0.0", "--port", PORT]
    (entrypoint,) = args_of(stage, "ENTRYPOINT")
    (script,) = json.loads(entrypoint)
    copies = args_of(stage, "COPY")
    assert f"deploy/entrypoint.sh {script}" in copies
    assert f"deploy/config.docker.toml {DEFAULT_CONFIG}" in copies


def test_dockerfile_keeps_secrets_out(docker: list[tuple[str, str]]) -> None:
    for word, args in docker:
        if word in {"ENV", "ARG", "LABEL"}:
            assert "SECRET" not in args and "PASSWORD" not in args, f"{word} {args}"


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_excludes_local_state() -> None:
    patterns = _dockerignore()
    for needed in (".venv", ".git", "outbox", "public", "**/__pycache__"):
        assert needed in patterns
    assert any(p.endswith("*.db") for p in patterns)


def test_dockerfile_copies_what_exists_and_is_not_ignored(docker: list[tuple[str, str]]) -> None:
    patterns = _dockerignore()
    for args in args_of(docker, "COPY"):
        if args.startswith("--from="):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            parts = Path(source).parts
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            for pattern in patterns:
                assert not any(fnmatch.fnmatch(p, pattern) for p in prefixes), (
                    f"COPY {source} is excluded by .dockerignore pattern {pattern!r}"
                )


# --- entrypoint ---------------------------------------------------------------------------


def _entrypoint(environ: dict[str, str]) -> str:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    proc = subprocess.run(
        [sh, str(DEPLOY / "entrypoint.sh"), sh, "-c", 'printf %s "$DIGEST_CONFIG"'],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **environ},
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return proc.stdout


def test_entrypoint_is_valid_sh() -> None:
    text = (DEPLOY / "entrypoint.sh").read_text("utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert 'exec "$@"' in text
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    subprocess.run([sh, "-n", str(DEPLOY / "entrypoint.sh")], check=True, timeout=10)


def test_entrypoint_falls_back_to_the_bundled_config() -> None:
    if Path(DATA_CONFIG).exists():
        pytest.skip(f"{DATA_CONFIG} exists on this machine")
    assert _entrypoint({"DIGEST_CONFIG": DATA_CONFIG}) == DEFAULT_CONFIG
    assert _entrypoint({}) == DEFAULT_CONFIG
    # Any other path is the operator's choice: kept as it is.
    assert _entrypoint({"DIGEST_CONFIG": "/srv/mine.toml"}) == "/srv/mine.toml"


# --- compose.yaml -------------------------------------------------------------------------


def test_compose_builds_the_image_and_mounts_data(compose: dict[str, Any]) -> None:
    assert set(compose) == {"services", "volumes"}
    app = compose["services"]["app"]
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    context = (DEPLOY / app["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / app["build"]["dockerfile"]).is_file()
    assert f"{PORT}:{PORT}" in app["ports"]
    data = [v for v in app["volumes"] if v.endswith(":/data")]
    assert len(data) == 1
    assert data[0].split(":")[0] in compose["volumes"]
    assert "mailcatcher" in app["depends_on"]
    # SIGTERM may take ~30 s to finish in-flight SMTP transactions; Docker's default is 10 s.
    assert seconds(app["stop_grace_period"]) > shutdown_timeout()


def test_compose_takes_secrets_from_the_environment(compose: dict[str, Any]) -> None:
    environment = compose["services"]["app"]["environment"]
    assert re.fullmatch(r"\$\{DIGEST_SECRET:\?[^}]+\}", environment["DIGEST_SECRET"])
    for name, value in environment.items():
        assert re.fullmatch(r"\$\{" + name + r"(:?[?-][^}]*)?\}", value), (
            f"{name} must come from the environment, not be written in compose.yaml"
        )
    for line in (DEPLOY / "compose.yaml").read_text("utf-8").splitlines():
        if not line.lstrip().startswith("#"):
            assert not re.search(r"(SECRET|PASSWORD)\s*[:=]\s*['\"]?(?!\$\{)\S{8,}", line), line


def test_compose_mailcatcher(compose: dict[str, Any], docker_toml: dict[str, Any]) -> None:
    mailpit = compose["services"]["mailcatcher"]
    assert mailpit["image"].split(":")[0] == "axllent/mailpit"
    assert "8025:8025" in mailpit["ports"]
    # The image's default config sends to this service.
    assert docker_toml["smtp"]["host"] in compose["services"]
    assert docker_toml["smtp"]["port"] == 1025


# --- systemd unit -------------------------------------------------------------------------


def test_systemd_unit(unit: configparser.ConfigParser) -> None:
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    exec_start = service["ExecStart"].split()
    assert exec_start[0] == "/opt/paper-digest/venv/bin/digest"
    assert exec_start[1:3] == ["--config", "/etc/paper-digest/config.toml"]
    assert "serve" in exec_start
    assert service["Type"] in {"simple", "exec"}
    assert service["User"] == "paper-digest"
    assert service["EnvironmentFile"].lstrip("-") == "/etc/paper-digest/env"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > shutdown_timeout()
    state = "/var/lib/" + service["StateDirectory"]
    assert service["WorkingDirectory"] == state
    assert state in service["ReadWritePaths"].split()
    assert service["ProtectSystem"] == "strict"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes", key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_unit_keeps_secrets_out() -> None:
    for line in (DEPLOY / "paper-digest.service").read_text("utf-8").splitlines():
        if line.startswith("Environment="):
            assert "SECRET" not in line and "PASSWORD" not in line, line


# --- the image's default config -----------------------------------------------------------


def test_docker_config_writes_to_the_volume(docker_toml: dict[str, Any]) -> None:
    assert docker_toml["database"] == "sqlite:////data/digest.db"
    assert docker_toml["feeds"]["dir"] == "/data/public"
    assert docker_toml["mail"]["outbox_dir"] == "/data/outbox"
    assert docker_toml["base_url"] == f"http://localhost:{PORT}"
    assert docker_toml["smtp"]["security"] == "none"
    assert "password" not in docker_toml["smtp"]  # secrets come from the environment
    assert docker_toml["web"] == {"host": "0.0.0.0", "port": int(PORT)}


def test_docker_config_loads() -> None:
    try:
        config = load(DEPLOY / "config.docker.toml")
    except ConfigError as exc:
        pending = not any(s.key.startswith("web.") for s in SETTINGS)
        new_sections = {"web", "schedule"}
        if pending and all(p.key.split(".")[0] in new_sections for p in exc.problems):
            pytest.skip("web/schedule settings not there yet")
        raise
    assert config.database == "sqlite:////data/digest.db"
    assert config.feeds.dir == Path("/data/public")
    assert config.mail.outbox_dir == Path("/data/outbox")
    assert config.smtp.host == "mailcatcher"
    assert config.smtp.port == 1025
    assert config.smtp.security == "none"
    assert config.smtp.username is None
    web = getattr(config, "web", None)
    if web is not None:
        assert (web.host, web.port) == ("0.0.0.0", int(PORT))


def test_compose_scales_workers_on_postgresql(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker, postgres = services["worker"], services["postgres"]
    assert worker["build"] == services["app"]["build"]  # the same image
    assert worker["command"] == ["digest", "worker"]
    assert "ports" not in worker and "container_name" not in worker  # --scale worker=N
    assert "postgres" in worker["depends_on"]
    assert worker["profiles"] == postgres["profiles"] == ["queue"]  # the default stays SQLite
    assert postgres["image"].split(":")[0] == "postgres"
    assert "ports" not in postgres  # only the services reach it
    assert re.fullmatch(
        r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", postgres["environment"]["POSTGRES_PASSWORD"]
    )
    assert postgres["volumes"][0].split(":")[0] in compose["volumes"]
    assert seconds(worker["stop_grace_period"]) >= 30
