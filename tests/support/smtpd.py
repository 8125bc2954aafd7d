"""A real aiosmtpd server on 127.0.0.1 that records what it receives and misbehaves on demand.

Usage::

    with SmtpServer(data_reply="451 4.3.0 Try again later", times=1) as server:
        sender = SmtpSender(server.host, server.port, security="none", ...)
        ...
        assert server.messages[0].rcpt_tos == ("ada@example.org",)
        assert server.messages[0].message["Subject"] == "..."

or, in a test, the ``smtp_server`` fixture: ``server = smtp_server(starttls=True, auth=("u",
"p"))`` (started, and stopped after the test). The server runs its own event loop in a
background thread, so it serves async tests, sync tests and subprocesses alike.

Faults (keyword arguments of :class:`SmtpServer` and :meth:`SmtpServer.set_faults`):

``greeting``        reply sent instead of the 220 greeting, then the connection is closed
                    (``"421 4.3.2 Too busy"``, ``"554 5.3.2 No service"``)
``mail_reply``      reply to MAIL FROM (``"550 5.7.1 Sender not allowed"``)
``rcpt_replies``    reply for given recipients (``{"bob@example.org": "550 5.1.1 No such user"}``)
``max_recipients``  RCPTs past this number in one transaction get ``452 4.5.3 Too many
                    recipients``
``data_reply``      reply after the message data instead of 250 (``"451 4.3.0 Try later"``)
``drop``            ``"mid-data"``: close the connection after the first line of the data;
                    ``"before-reply"``: read all the data, record the message (the server
                    has it), close without answering
``stall_on``        ``"greeting"``, ``"EHLO"``, ``"MAIL"``, ``"RCPT"`` or ``"DATA"`` (after the
                    data, before the reply): sleep ``stall`` seconds (default 5) there
``times``           each fault fires on its first ``times`` occasions only, then the server
                    behaves (None: always)

Setup (constructor only): ``starttls=True`` offers STARTTLS and ``implicit_tls=True`` speaks
TLS from the first byte, both with a self-signed certificate made at test time (see
:func:`tls_problem`; trust it with :meth:`SmtpServer.client_tls_context`);
``auth=(user, password)`` requires AUTH (offered only over TLS unless
``auth_require_tls=False``, as aiosmtpd does); ``pipelining=False`` stops offering
PIPELINING (RFC 2920), so clients send one command at a time.

What it records: ``connections`` (TCP connections accepted), ``commands`` (every command
line as :class:`Command`, AUTH included), ``auth_attempts`` and ``messages``
(:class:`Received`: envelope, bytes exactly as received after dot-unstuffing, parsed message).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any, Literal, Self

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
StallPoint = Literal["greeting", "EHLO", "MAIL", "RCPT", "DATA"]


@dataclass(frozen=True)
class Faults:
    """How the server misbehaves; see the module docstring."""

    greeting: str | None = None
    mail_reply: str | None = None
    rcpt_replies: Mapping[str, str] = field(default_factory=dict)
    max_recipients: int | None = None
    data_reply: str | None = None
    drop: Literal["mid-data", "before-reply"] | None = None
    stall_on: StallPoint | None = None
    stall: float = 5.0
    times: int | None = None


@dataclass(frozen=True)
class Received:
    """One message the server accepted (or, with ``drop="before-reply"``, read in full)."""

    session: int  # 1-based number of the connection that carried it
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # as received, dot-unstuffed, CRLF line ends
    tls: bool
    auth_user: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)

    def header_line(self, name: str) -> bytes:
        """The raw header field ``name`` as received, folding included, without the final CRLF."""
        head = self.data.split(b"\r\n\r\n", 1)[0]
        lines: list[bytes] = []
        for line in head.split(b"\r\n"):
            if lines and line[:1] in (b" ", b"\t"):
                lines[-1] += b"\r\n" + line
            else:
                lines.append(line)
        prefix = name.lower().encode() + b":"
        for line in lines:
            if line.lower().startswith(prefix):
                return line
        raise KeyError(name)


@dataclass(frozen=True)
class Command:
    session: int
    verb: str
    arg: str | None
    tls: bool
    #: more of the client's input was already waiting when it was read (pipelined)
    queued: bool = False


# -- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path  # PEM, for 127.0.0.1 and localhost
    key: Path
    ca: Path  # the authority that signed it: what a client should trust


def tls_problem() -> str | None:
    """None when a test certificate can be made, else why not (a reason for pytest.skip)."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            return "TLS tests need the cryptography package or the openssl command; neither found"
    return None


@cache
def certificate() -> Certificate:
    """A throwaway CA and a server certificate it signed, made once per test process.

    With the ``cryptography`` package when installed, else with the ``openssl`` command.
    """
    folder = Path(tempfile.mkdtemp(prefix="digest-test-tls-"))
    paths = Certificate(cert=folder / "server.pem", key=folder / "server.key", ca=folder / "ca.pem")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _make_with_openssl(paths)
    else:
        _make_with_cryptography(paths)
    return paths


def _make_with_cryptography(paths: Certificate) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("paper-digest test CA"))
        .issuer_name(name("paper-digest test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _make_with_openssl(paths: Certificate) -> None:
    folder = paths.ca.parent
    ca_key, csr, ext = folder / "ca.key", folder / "server.csr", folder / "server.ext"
    ext.write_text(
        f"subjectAltName=DNS:localhost,IP:{HOST}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
    )
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", "-x509", *newkey, "-keyout", ca_key, "-out", paths.ca, "-days", "2",
         "-subj", "/CN=paper-digest test CA",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *newkey, "-keyout", paths.key, "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", paths.ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", paths.cert, "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def client_tls_context() -> ssl.SSLContext:
    """A verifying client context that trusts the test CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(certificate().ca))


def _server_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    paths = certificate()
    context.load_cert_chain(paths.cert, paths.key)
    return context


# -- the server -----------------------------------------------------------------------------


class _Handler:
    """aiosmtpd hooks: faults at MAIL, RCPT and DATA, and the recording of messages."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: _SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.server.pipelining:  # aiosmtpd reads commands one by one from a stream
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, smtp: _SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        faults = self.server.faults
        if faults.mail_reply and self.server._fire("mail"):
            return faults.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: _SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        faults = self.server.faults
        reply = faults.rcpt_replies.get(address)
        if reply and self.server._fire(f"rcpt:{address}"):
            return reply
        limit = faults.max_recipients
        if limit is not None and len(envelope.rcpt_tos) >= limit and self.server._fire("rcpts"):
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, smtp: _SMTP, session: Session, envelope: Envelope) -> str:
        server, faults = self.server, self.server.faults
        if faults.drop == "before-reply" and server._fire("drop"):
            server._record(smtp, envelope)
            assert smtp.transport is not None
            smtp.transport.close()
            await asyncio.sleep(60)  # cancelled when the connection is gone
        if faults.stall_on == "DATA" and server._fire("stall"):
            await asyncio.sleep(faults.stall)
        if faults.data_reply and server._fire("data"):
            return faults.data_reply
        server._record(smtp, envelope)
        return "250 2.0.0 OK queued"


class _SMTP(SMTP):
    """aiosmtpd's protocol with a session number, a command log, greeting and drop faults."""

    def __init__(self, server: SmtpServer, number: int, **kwargs: Any) -> None:
        super().__init__(_Handler(server), **kwargs)
        self.server = server
        self.number = number
        self.auth_user: str | None = None
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._logged(verb, method)

    @property
    def tls(self) -> bool:
        return self._tls_protocol is not None or self.server.implicit_tls

    def _logged(self, verb: str, method: Callable[[str | None], Any]) -> Callable[..., Any]:
        async def run(arg: str | None) -> None:
            queued = bool(getattr(self._reader, "_buffer", b""))
            self.server.commands.append(Command(self.number, verb, arg, self.tls, queued))
            faults = self.server.faults
            if faults.stall_on == verb and verb != "DATA" and self.server._fire("stall"):
                await asyncio.sleep(faults.stall)
            await method(arg)

        return run

    async def _handle_client(self) -> None:
        faults = self.server.faults
        if faults.stall_on == "greeting" and self.server._fire("stall"):
            await asyncio.sleep(faults.stall)
        if faults.greeting and self.server._fire("greeting"):
            await self.push(faults.greeting)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str | None) -> None:
        envelope = self.envelope
        ready = envelope is not None and envelope.rcpt_tos and not arg
        if ready and self.server.faults.drop == "mid-data" and self.server._fire("drop"):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")
            assert self.transport is not None
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class SmtpServer:
    """A recording, fault-injecting SMTP server on ``HOST`` and a free port; see the module."""

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
        timeout: float = 30,
        pipelining: bool = True,
        **faults: Any,
    ) -> None:
        self.starttls = starttls
        self.pipelining = pipelining
        self.implicit_tls = implicit_tls
        self.auth = auth
        self.auth_require_tls = auth_require_tls
        self.idle_timeout = timeout
        self.faults = Faults(**faults)
        self.host = HOST
        self.port = 0
        self.connections = 0
        self.commands: list[Command] = []
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (user, accepted)
        self._fired: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._protocols: list[_SMTP] = []
        self._tls = _server_tls_context() if (starttls or implicit_tls) else None

    # -- control --

    def set_faults(self, **faults: Any) -> None:
        """Replace the faults (all of them) and restart their ``times`` counters."""
        with self._lock:
            self.faults = Faults(**faults)
            self._fired.clear()

    def client_tls_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's certificate."""
        return client_tls_context()

    @property
    def sessions(self) -> set[int]:
        """Numbers of the connections that carried at least one message."""
        return {m.session for m in self.messages}

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="test-smtpd", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the server thread --

    def _fire(self, fault: str) -> bool:
        """Whether ``fault`` fires this time (it fires ``faults.times`` times at most)."""
        with self._lock:
            times = self.faults.times
            count = self._fired.get(fault, 0)
            if times is not None and count >= times:
                return False
            self._fired[fault] = count + 1
            return True

    def _record(self, smtp: _SMTP, envelope: Envelope) -> None:
        self.messages.append(
            Received(
                session=smtp.number,
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                tls=smtp.tls,
                auth_user=smtp.auth_user,
            )
        )

    def _authenticate(
        self, smtp: _SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = False
        user = ""
        if isinstance(data, LoginPassword) and self.auth is not None:
            user = data.login.decode(errors="replace")
            ok = (user, data.password.decode(errors="replace")) == self.auth
        self.auth_attempts.append((user, ok))
        if ok:
            smtp.auth_user = user
        return AuthResult(success=ok, handled=False)

    def _factory(self) -> _SMTP:
        assert self._loop is not None
        self.connections += 1
        tls_on_connect = self.implicit_tls
        kwargs: dict[str, Any] = {
            "hostname": "smtpd.test",
            "loop": self._loop,
            "timeout": self.idle_timeout,
            "tls_context": self._tls if self.starttls else None,
            # RFC 4954 §4: a server should not offer AUTH in clear; aiosmtpd does so only
            # when told. Required AUTH needs TLS, or aiosmtpd warns (an error in this suite).
            "auth_require_tls": self.auth_require_tls and not tls_on_connect,
            "auth_required": self.auth is not None and self.auth_require_tls and not tls_on_connect,
        }
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
        else:
            kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        protocol = _SMTP(self, self.connections, **kwargs)
        self._protocols.append(protocol)
        return protocol

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            listener = loop.run_until_complete(
                loop.create_server(
                    self._factory, self.host, 0, ssl=self._tls if self.implicit_tls else None
                )
            )
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            loop.close()
            return
        self.port = listener.sockets[0].getsockname()[1]
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            listener.close()
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0.01))  # let the transports finish closing
            loop.run_until_complete(listener.wait_closed())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """A factory of started :class:`SmtpServer`, all stopped after the test.

    TLS options skip the test when no certificate can be made (see :func:`tls_problem`).
    """
    started: list[SmtpServer] = []

    def make(**options: Any) -> SmtpServer:
        if options.get("starttls") or options.get("implicit_tls"):
            problem = tls_problem()
            if problem:
                pytest.skip(problem)
        server = SmtpServer(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


__all__ = [
    "HOST",
    "Command",
    "Faults",
    "Received",
    "SmtpServer",
    "certificate",
    "client_tls_context",
    "smtp_server",
    "tls_problem",
]
