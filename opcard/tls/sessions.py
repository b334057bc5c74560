"""TLS session resumption: :class:`TlsSession` and :class:`SessionCache`.

A full handshake with client authentication costs the card one signature. A *resumed*
handshake proves both sides' identities with the secret of an earlier session instead, and
costs the card nothing: TLS 1.2 resumes by session ID (RFC 5246) or session ticket (RFC 5077),
TLS 1.3 by a PSK ticket (RFC 8446 §2.2). The server keeps the client's certificate with the
session, so the resumed connection is still the card's.

A session is bound to what was checked when it was made, and is offered only when all of it
is the same again (:class:`SessionKey`):

- the server: the host and port connected to, and the server name (SNI and the name checked
  in the server's certificate);
- the client: the card (its AID), the key slot and the certificate sent;
- the trust: the trust anchors, the public key pins and whether the chain was checked at all.

Before a session is offered, the server chain it was made with is verified again under the
current trust settings (and dates): a session verified under one setting is never resumed
under a stricter one it would not pass. A session is also never older than its ``lifetime``
(2 hours by default; TLS 1.3 tickets at most 7 days, RFC 8446 §4.6.1), and a TLS 1.3 ticket is
used once (RFC 8446 §C.4).

The secret of a session (the TLS 1.2 master secret, the TLS 1.3 resumption secret) lets
whoever holds it resume the session as the card's owner, without the card, for as long as the
server accepts the session (its timeout or ticket lifetime; opcard's own age limit binds opcard):
:meth:`TlsSession.save` writes it to a file readable by its owner only (0600, created
atomically); :meth:`TlsSession.load` refuses a file that others can read or write.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from opcard.errors import TlsError

with warnings.catch_warnings():  # see opcard.tls.keys
    warnings.simplefilter("ignore", DeprecationWarning)
    from tlslite.constants import CipherSuite
    from tlslite.messages import NewSessionTicket
    from tlslite.session import Session as _TlsliteSession
    from tlslite.session import Ticket as _Tls12Ticket
    from tlslite.x509 import X509
    from tlslite.x509certchain import X509CertChain

__all__ = ["SessionCache", "SessionKey", "TlsSession"]

#: the default age limit of a session (OpenSSL's default session timeout for TLS 1.2)
DEFAULT_LIFETIME = 7200.0
#: RFC 8446 §4.6.1: clients must not cache TLS 1.3 tickets for longer than 7 days
MAX_TLS13_LIFETIME = 7 * 24 * 3600.0
FILE_FORMAT = "opcard-tls-session"
FILE_VERSION = 1
MAX_FILE_SIZE = 256 * 1024

TLS1_2 = 0x0303
TLS1_3 = 0x0304

# taking a TLS 1.3 ticket out of a session (used once) is atomic across threads
_OFFER_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class SessionKey:
    """What a session is bound to: it is resumed only when all of it is equal again."""

    host: str  # lower case, no brackets
    port: int
    server_name: str  # the name checked in the certificate (and sent as SNI unless an IP)
    client: str  # hex SHA-256 of the card's AID, the slot and the client certificate
    trust: str  # hex SHA-256 of the trust settings (anchors, pins, chain checked or not)

    def describe_difference(self, other: SessionKey) -> str | None:
        """Why a session made for ``self`` does not fit ``other`` (None: it does)."""
        if (self.host, self.port) != (other.host, other.port):
            return f"it was made with {self.host}:{self.port}, not {other.host}:{other.port}"
        if self.server_name != other.server_name:
            return f"it was made for the server name {self.server_name!r}"
        if self.client != other.client:
            return "it was made with another card, key slot or client certificate"
        if self.trust != other.trust:
            return "it was made under other trust settings (CA file, pinned keys, --no-verify)"
        return None


def client_identity(aid: bytes, slot: str, certificate_der: bytes) -> str:
    digest = hashlib.sha256()
    for part in (aid, slot.encode(), certificate_der):
        digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()


def trust_identity(
    anchors: Sequence[bytes] | None, pins: Sequence[bytes], check_chain: bool
) -> str:
    """``anchors`` None: no verification at all (``verify=False``)."""
    digest = hashlib.sha256()
    if anchors is None:
        digest.update(b"no-verify")
        return digest.hexdigest()
    digest.update(b"chain" if check_chain else b"pin-only")
    for der in sorted(hashlib.sha256(a).digest() for a in anchors):
        digest.update(b"A" + der)
    for pin in sorted(pins):
        digest.update(b"P" + pin)
    return digest.hexdigest()


class TlsSession:
    """A resumable TLS session: what :attr:`opcard.tls.TlsConnection.session` returns, what
    :class:`SessionCache` keeps, what ``TlsClient.connect(…, session=)`` offers.

    Attributes: ``key`` (:class:`SessionKey`), ``version`` (0x0303 / 0x0304), ``cipher_suite``,
    ``server_chain`` (DER certificates the server sent in the full handshake), ``created`` and
    ``expires`` (``time.time()`` values; ``created`` is the full handshake, the card's
    signature). :attr:`resumable` says whether it can be offered now.
    """

    def __init__(
        self,
        tlslite_session: Any,
        *,
        key: SessionKey,
        version: int,
        server_chain: Sequence[bytes],
        created: float,
        expires: float,
    ) -> None:
        self._session = tlslite_session
        self.key = key
        self.version = version
        self.server_chain = tuple(bytes(d) for d in server_chain)
        self.created = created
        self.expires = expires

    @property
    def cipher_suite(self) -> int:
        return int(self._session.cipherSuite)

    @property
    def version_label(self) -> str:
        return f"TLS 1.{(self.version & 0xFF) - 1}"

    def __repr__(self) -> str:
        # never the secrets
        how = ", ".join(self._mechanisms()) or "nothing to resume with"
        return (
            f"<TlsSession {self.key.server_name} {self.key.host}:{self.key.port} "
            f"{self.version_label} ({how})>"
        )

    def _mechanisms(self) -> list[str]:
        out = []
        if self._session.sessionID:
            out.append("session ID")
        if self._session.tls_1_0_tickets:
            out.append("TLS 1.2 ticket")
        if self._session.tickets:
            out.append(f"{len(self._session.tickets)} TLS 1.3 ticket(s)")
        return out

    # -- state ------------------------------------------------------------------------------

    def _valid_tls13_tickets(self, now: float) -> list[Any]:
        tickets = self._session.tickets or []
        return [
            t
            for t in tickets
            if t.time is not None
            and now < t.time + t.ticket_lifetime
            and now < t.time + MAX_TLS13_LIFETIME
        ]

    def _valid_tls12_tickets(self, now: float) -> list[Any]:
        tickets = self._session.tls_1_0_tickets or []
        return [
            t for t in tickets if not t.ticket_lifetime or now < t.time_received + t.ticket_lifetime
        ]

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires

    @property
    def resumable(self) -> bool:
        """Not expired, and holds a session ID or a ticket that is still valid."""
        now = time.time()
        if self.expired(now):
            return False
        if self.version == TLS1_3:
            return bool(self._valid_tls13_tickets(now))
        return bool(self._session.sessionID) or bool(self._valid_tls12_tickets(now))

    def _offer(self) -> Any:
        """The tlslite session to hand to ``handshakeClientCert``: a copy; a TLS 1.3 ticket
        it uses is taken out of this session (a ticket is used once)."""
        with _OFFER_LOCK:
            return self._offer_locked()

    def _offer_locked(self) -> Any:
        now = time.time()
        offered = self._session._clone()
        if self.version == TLS1_3:
            valid = self._valid_tls13_tickets(now)
            if not valid:
                return None
            ticket = valid[-1]  # the newest
            self._session.tickets[:] = [t for t in valid if t is not ticket]
            offered.tickets = [ticket]
            offered.tls_1_0_tickets = None
            offered.sessionID = bytearray(0)
        else:
            offered.tickets = None
            valid12 = self._valid_tls12_tickets(now)
            offered.tls_1_0_tickets = list(valid12)
            if valid12 and not offered.sessionID:
                # RFC 5077 §3.4: a server that accepts the ticket echoes the session ID; one of
                # our own tells a resumption from a full handshake (tlslite assumes the former)
                offered.sessionID = bytearray(os.urandom(32))
            if not offered.sessionID:
                return None
        offered.resumable = True
        return offered

    def _derived(self, tlslite_session: Any, version: int) -> TlsSession:
        """The session a resumption made: new secrets and tickets, the same binding, server
        chain, creation time and age limit (a resumption does not extend the session)."""
        return TlsSession(
            tlslite_session,
            key=self.key,
            version=version,
            server_chain=self.server_chain,
            created=self.created,
            expires=self.expires,
        )

    # -- files ------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The session as a JSON document (holds the session's secret: keep it private)."""
        s = self._session
        now = time.time()
        document: dict[str, Any] = {
            "format": FILE_FORMAT,
            "format_version": FILE_VERSION,
            "warning": "this file holds a TLS session secret: whoever reads it can resume "
            "the session as the card's owner, without the card, while the server accepts it",
            "host": self.key.host,
            "port": self.key.port,
            "server_name": self.key.server_name,
            "sni": s.serverName or None,
            "client": self.key.client,
            "trust": self.key.trust,
            "version": self.version,
            "cipher_suite": self.cipher_suite,
            "created": self.created,
            "expires": self.expires,
            "extended_master_secret": bool(s.extendedMasterSecret),
            "encrypt_then_mac": bool(s.encryptThenMAC),
            "server_chain": [base64.b64encode(d).decode() for d in self.server_chain],
        }
        if self.version == TLS1_3:
            document["resumption_master_secret"] = bytes(s.resumptionMasterSecret).hex()
            document["tickets"] = [
                {
                    "ticket": base64.b64encode(bytes(t.ticket)).decode(),
                    "lifetime": int(t.ticket_lifetime),
                    "age_add": int(t.ticket_age_add),
                    "nonce": bytes(t.ticket_nonce).hex(),
                    "received": float(t.time),
                }
                for t in self._valid_tls13_tickets(now)
            ]
        else:
            document["master_secret"] = bytes(s.masterSecret).hex()
            document["session_id"] = bytes(s.sessionID).hex()
            document["tickets"] = [
                {
                    "ticket": base64.b64encode(bytes(t.ticket)).decode(),
                    "lifetime": int(t.ticket_lifetime),
                    "received": float(t.time_received),
                }
                for t in self._valid_tls12_tickets(now)
            ]
        return (json.dumps(document, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the session data") -> TlsSession:
        """A session from :meth:`to_bytes`; :class:`~opcard.errors.TlsError` naming what is
        wrong for anything else (every field is checked: type, length, range)."""
        if len(data) > MAX_FILE_SIZE:
            raise TlsError(f"{source}: not a TLS session file (larger than {MAX_FILE_SIZE} bytes)")
        try:
            document = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise TlsError(f"{source}: not a TLS session file of opcard (not JSON: {e})") from e
        try:
            return _parse(document)
        except _Bad as e:
            raise TlsError(f"{source}: {e}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_bytes` to ``path``, mode 0600, atomically (a temporary file in the
        same directory, renamed over ``path``)."""
        target = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(target))
        fd, temporary = tempfile.mkstemp(prefix=".opcard-session-", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(self.to_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, check_private: bool = True) -> TlsSession:
        """Read a file written by :meth:`save`. With ``check_private`` (the default), a file
        that is not a regular file of the current user, or that its group or others may read
        or write, is refused (as ssh refuses such private keys)."""
        name = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(name, flags)
        except OSError as e:
            if e.errno == errno.ELOOP and os.path.islink(name):
                raise TlsError(
                    f"the session file {name} is a symbolic link: refused (give the file itself)"
                ) from e
            raise TlsError(f"cannot read the session file {name}: {e.strerror}") from e
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # before fdopen, which refuses a directory itself
            os.close(fd)
            raise TlsError(f"the session file {name} is not a regular file")
        with os.fdopen(fd, "rb") as handle:
            if check_private:
                if hasattr(os, "getuid") and info.st_uid != os.getuid():
                    raise TlsError(
                        f"the session file {name} belongs to another user: refused (it holds "
                        "a session secret; whoever can change it can make you talk to someone "
                        "else)"
                    )
                if info.st_mode & 0o077:
                    raise TlsError(
                        f"the session file {name} is accessible by others (mode "
                        f"{stat.S_IMODE(info.st_mode):04o}): refused, it holds a session "
                        f"secret (chmod 600 {name}, if nobody else could have read it)"
                    )
            data = handle.read(MAX_FILE_SIZE + 1)
        return cls.from_bytes(data, f"the session file {name}")


class SessionCache:
    """Resumable sessions by :class:`SessionKey`, newest first; thread-safe.

    ``maxsize``: sessions kept in all (the least recently used go first); ``lifetime``: the
    age limit of a session in seconds, counted from its full handshake (the card's
    signature), whatever the server's ticket lifetime says.
    """

    def __init__(self, maxsize: int = 100, lifetime: float = DEFAULT_LIFETIME) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if lifetime <= 0:
            raise ValueError("lifetime must be positive")
        self.maxsize = maxsize
        self.lifetime = float(lifetime)
        self._entries: OrderedDict[SessionKey, list[TlsSession]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._entries.values())

    def __repr__(self) -> str:
        return f"<SessionCache {len(self)} sessions, lifetime {self.lifetime:g} s>"

    def sessions(self) -> list[TlsSession]:
        with self._lock:
            return [s for entries in self._entries.values() for s in entries]

    def add(self, session: TlsSession) -> None:
        with self._lock:
            entries = self._entries.setdefault(session.key, [])
            if session not in entries:
                entries.insert(0, session)
            self._entries.move_to_end(session.key)
            del entries[4:]  # a few per server are plenty
            while sum(len(v) for v in self._entries.values()) > self.maxsize:
                oldest = next(iter(self._entries))
                self._entries[oldest].pop()
                if not self._entries[oldest]:
                    del self._entries[oldest]

    def get(
        self, key: SessionKey, versions: tuple[int, int] = (TLS1_2, TLS1_3)
    ) -> TlsSession | None:
        """The newest resumable session for ``key`` whose version is in ``versions`` (lowest,
        highest); expired ones are dropped."""
        with self._lock:
            entries = self._entries.get(key)
            if not entries:
                return None
            entries[:] = [s for s in entries if s.resumable]
            if not entries:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            low, high = versions
            return next((s for s in entries if low <= s.version <= high), None)

    def discard(self, session: TlsSession) -> None:
        with self._lock:
            entries = self._entries.get(session.key)
            if entries and session in entries:
                entries.remove(session)
                if not entries:
                    del self._entries[session.key]

    def clear(self) -> None:
        """Forget every session (e.g. when the card is logged out)."""
        with self._lock:
            self._entries.clear()


# --- parsing a session file -----------------------------------------------------------------


class _Bad(Exception):
    pass


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _field(document: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in document:
        raise _Bad(f"the field {name!r} is missing")
    value = document[name]
    if isinstance(value, bool) and kind is not bool:
        raise _Bad(f"the field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise _Bad(f"the field {name!r} has the wrong type")
    return value


def _int(document: dict[str, Any], name: str, low: int, high: int) -> int:
    value = _field(document, name, int)
    if not low <= value <= high:
        shown = value if -(10**20) < value < 10**20 else "a huge number"
        raise _Bad(f"the field {name!r} is out of range ({shown})")
    return int(value)


def _float(document: dict[str, Any], name: str) -> float:
    value = _field(document, name, (int, float))
    # compared before float(): float() of a huge JSON integer raises OverflowError
    if not 0 <= value < 1e11:
        raise _Bad(f"the field {name!r} is out of range")
    return float(value)


def _name(document: dict[str, Any], name: str) -> str:
    """A host or server name: printable, no space (a file's text reaches messages)."""
    text: str = _field(document, name, str)
    if not 0 < len(text) < 256:
        raise _Bad(f"the field {name!r} is empty or too long")
    if not text.isprintable() or " " in text:
        raise _Bad(f"the field {name!r} holds control, format or space characters")
    return text


def _hex(document: dict[str, Any], name: str, lengths: Sequence[int]) -> bytearray:
    text = _field(document, name, str)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise _Bad(f"the field {name!r} is not hexadecimal") from None
    if len(value) not in lengths:
        raise _Bad(f"the field {name!r} has the wrong length ({len(value)} bytes)")
    return bytearray(value)


def _b64(document: dict[str, Any], name: str, low: int, high: int) -> bytearray:
    text = _field(document, name, str)
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"the field {name!r} is not base64") from None
    if not low <= len(value) <= high:
        raise _Bad(f"the field {name!r} has the wrong length ({len(value)} bytes)")
    return bytearray(value)


def _hexdigest(document: dict[str, Any], name: str) -> str:
    return bytes(_hex(document, name, (32,))).hex()


def _parse(document: Any) -> TlsSession:
    if not isinstance(document, dict):
        raise _Bad("not a TLS session file of opcard (not a JSON object)")
    if document.get("format") != FILE_FORMAT:
        raise _Bad("not a TLS session file of opcard (no 'format': 'opcard-tls-session')")
    if document.get("format_version") != FILE_VERSION:
        version = document.get("format_version")
        shown = repr(version) if isinstance(version, int) and abs(version) < 10**6 else "this"
        raise _Bad(f"format version {shown} is not supported")
    host = _name(document, "host")
    server_name = _name(document, "server_name")
    sni = _name(document, "sni") if document.get("sni") is not None else None
    key = SessionKey(
        host=host,
        port=_int(document, "port", 1, 65535),
        server_name=server_name,
        client=_hexdigest(document, "client"),
        trust=_hexdigest(document, "trust"),
    )
    version = _int(document, "version", TLS1_2, TLS1_3)
    suite = _int(document, "cipher_suite", 1, 0xFFFF)
    if (version == TLS1_3) != (suite in CipherSuite.tls13Suites):
        raise _Bad(f"the cipher suite 0x{suite:04x} is not one of a {_label(version)} session")
    created = _float(document, "created")
    expires = _float(document, "expires")
    if not created <= expires <= created + MAX_TLS13_LIFETIME:
        raise _Bad("the field 'expires' is out of range")
    chain_text = _field(document, "server_chain", list)
    if not 1 <= len(chain_text) <= 10:
        raise _Bad("the server chain must hold 1 to 10 certificates")
    chain: list[bytes] = []
    for index, item in enumerate(chain_text):
        der = bytes(_b64({"certificate": item}, "certificate", 1, 64 * 1024))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x509.load_der_x509_certificate(der)
        except Exception as e:  # ValueError, and InvalidVersion (not a ValueError)
            raise _Bad(f"certificate {index} of the server chain is malformed: {e}") from None
        chain.append(der)
    tickets = _field(document, "tickets", list)
    if len(tickets) > 16:
        raise _Bad("too many tickets")
    for ticket in tickets:
        if not isinstance(ticket, dict):
            raise _Bad("a ticket is not a JSON object")
    session = _TlsliteSession()
    session.cipherSuite = suite
    session.srpUsername = None  # as tlslite's certificate handshakes leave it
    session.serverName = sni
    session.resumable = True
    session.extendedMasterSecret = bool(_field(document, "extended_master_secret", bool))
    session.encryptThenMAC = bool(_field(document, "encrypt_then_mac", bool))
    session.serverCertChain = X509CertChain([_x509(d) for d in chain])
    if version == TLS1_3:
        length = 48 if suite in CipherSuite.sha384PrfSuites else 32  # the suite's hash
        session.resumptionMasterSecret = _hex(document, "resumption_master_secret", (length,))
        parsed = []
        for item in tickets:
            ticket = NewSessionTicket().create(
                _int(item, "lifetime", 0, 7 * 24 * 3600),
                _int(item, "age_add", 0, 2**32 - 1),
                _hex(item, "nonce", range(256)),
                _b64(item, "ticket", 1, 65535),
                [],
            )
            ticket.time = _float(item, "received")
            parsed.append(ticket)
        session.tickets = parsed
        session.tls_1_0_tickets = []
    else:
        session.masterSecret = _hex(document, "master_secret", (48,))
        session.sessionID = _hex(document, "session_id", range(33))
        parsed12 = []
        for item in tickets:
            ticket12 = _Tls12Ticket(
                _b64(item, "ticket", 1, 65535),
                _int(item, "lifetime", 0, 2**32 - 1),
                session.masterSecret,
                suite,
            )
            ticket12.time_received = _float(item, "received")
            parsed12.append(ticket12)
        session.tls_1_0_tickets = parsed12
        session.tickets = []
    return TlsSession(
        session, key=key, version=version, server_chain=chain, created=created, expires=expires
    )


def _label(version: int) -> str:
    return f"TLS 1.{(version & 0xFF) - 1}"


def _x509(der: bytes) -> Any:
    cert = X509()
    try:
        cert.parseBinary(bytearray(der))
    except Exception as e:  # tlslite's parser raises what it meets (KeyError for an OID…)
        raise _Bad(
            f"a certificate of the server chain cannot be read: {type(e).__name__} {e}"
        ) from None
    return cert
