"""A real IMAP server for the tests: Debian's Dovecot (``apt-get install dovecot-imapd``),
started in the foreground from a minimal configuration in a temporary folder.

One user (:data:`USER`, password :data:`PASSWORD`) whose mail is a maildir in that folder;
IMAP with STARTTLS on one free port and IMAP over TLS on another, both on 127.0.0.1, with
the test certificate of :mod:`tests.support.smtpd` (trust it with ``client_tls_context()``).
Where Dovecot is missing, :func:`dovecot_problem` says so (a reason for ``pytest.skip``).

Usage::

    with Dovecot(tmp_path) as server:
        server.append(raw_bytes)               # a message arrives in INBOX
        ... ImapMailbox("127.0.0.1", server.imaps_port, security="tls", ...)
        server.keywords()                     # each message's keywords, by UID
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.smtpd import certificate, client_tls_context, tls_problem

USER = "bounces"
PASSWORD = "s3cret-imap-password"
HOST = "127.0.0.1"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def dovecot_problem() -> str | None:
    """None when Dovecot can be started here, else why not."""
    if not Path(DOVECOT).exists():
        return (
            "Dovecot is not installed (apt-get install dovecot-imapd; .ci/run installs it "
            "as root): the IMAP tests need a real server"
        )
    return tls_problem()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """Dovecot serving one maildir user from ``folder`` (made if missing)."""

    def __init__(self, folder: Path, *, capability: str | None = None) -> None:
        """``capability``: what the server announces after login, instead of its own list
        (``"IMAP4rev1 UIDPLUS"``: a server without MOVE)."""
        self.folder = folder
        self.capability = capability
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.maildir = folder / "mail" / USER
        self._process: subprocess.Popen[bytes] | None = None
        self._base = folder

    def _config(self) -> Path:
        me = pwd.getpwuid(os.getuid())
        group = grp.getgrgid(os.getgid()).gr_name
        # As root, Dovecot's login and internal processes must run as other users (the
        # package makes dovenull and dovecot), which must reach the sockets in base_dir.
        login, internal = (me.pw_name, me.pw_name) if os.getuid() else ("dovenull", "dovecot")
        self._base = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
        self._base.chmod(0o755)
        # Mail is never accessed as root: as root, it belongs to the dovecot user.
        owner = me if os.getuid() else pwd.getpwnam("dovecot")
        cert = certificate()
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "home", "mail"):
            (self._base / sub).mkdir()
            os.chown(self._base / sub, owner.pw_uid, owner.pw_gid)
        self.maildir = self._base / "mail" / USER
        (self._base / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        conf = self.folder / "dovecot.conf"
        conf.write_text(
            f"""
base_dir = {self._base}
state_dir = {self._base}/state
log_path = {self.folder}/dovecot.log
protocols = imap
listen = {HOST}
ssl = yes
ssl_cert = <{cert.cert}
ssl_key = <{cert.key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
{f"imap_capability = {self.capability}" if self.capability else ""}
default_internal_user = {internal}
default_internal_group = {group if os.getuid() else internal}
default_login_user = {login}
first_valid_uid = {owner.pw_uid}
first_valid_gid = {owner.pw_gid}
mail_location = maildir:{self._base}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self._base}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={self._base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
        )
        return conf

    def start(self) -> Dovecot:
        conf = self._config()
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(f"dovecot exited: {err.decode(errors='replace')}{self.log()}")
            try:
                with socket.create_connection((HOST, self.imaps_port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen within 10 s: {self.log()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(self._base, ignore_errors=True)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, folder: str = "INBOX") -> imaplib.IMAP4_SSL:
        """A logged-in IMAP client over TLS, ``folder`` selected."""
        conn = imaplib.IMAP4_SSL(HOST, self.imaps_port, ssl_context=client_tls_context())
        conn.login(USER, PASSWORD)
        conn.select(folder)
        return conn

    def create(self, folder: str) -> None:
        """Make the folder ``folder``."""
        conn = self.client()
        try:
            typ, data = conn.create(folder)
            assert typ == "OK", data
        finally:
            conn.logout()

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver ``raw`` into ``folder`` (IMAP APPEND, as a delivery agent would)."""
        conn = self.client()
        try:
            typ, data = conn.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def empty(self) -> None:
        """Remove every message of INBOX (between tests sharing the server)."""
        conn = self.client()
        try:
            conn.uid("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
            conn.expunge()
        finally:
            conn.logout()

    def keywords(self, folder: str = "INBOX") -> list[str]:
        """Each message's flags, in the order of ``folder``."""
        conn = self.client(folder)
        try:
            _, data = conn.fetch("1:*", "(FLAGS)")
            return [
                item.decode().split("FLAGS (")[1].split(")")[0]
                for item in data
                if isinstance(item, bytes) and b"FLAGS (" in item
            ]
        finally:
            conn.logout()
