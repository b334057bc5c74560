"""The TLS client: client authentication with the card's certificate and key.

Python's ``ssl`` module cannot hand the private-key operation to a card, so opcard uses
tlslite-ng, a TLS 1.2/1.3 stack in pure Python that takes client keys as objects: the key
classes of :mod:`opcard.tls.keys` make each CertificateVerify signature on the card, through
the one-APDU path of :meth:`opcard.session.Session.digest_signer`. The server's certificate
chain is verified by opcard with ``cryptography`` (:mod:`opcard.tls.verify`), as soon as the
server sends it: nothing is signed on the card for a server that fails verification.

Example::

    import opcard
    from opcard.tls import TlsClient

    with opcard.open_card() as card, card.session() as session:
        session.login("123456")
        client = TlsClient(session, cafile="ca.pem", alpn=["http/1.1"])   # AUT key
        with client.connect("www.example.org", 443) as conn:
            print(conn.version.label, conn.cipher, conn.server_certificate.subject)
            conn.sendall(b"GET / HTTP/1.1\\r\\nHost: www.example.org\\r\\n\\r\\n")
            print(conn.recv())

Versions: TLS 1.2 and 1.3 (1.0 and 1.1 are not offered). An RSA card key signs PKCS#1 v1.5
only and TLS 1.3 requires RSA-PSS, so with an RSA key the client offers TLS 1.2 at most, and
asking for TLS 1.3 only (``min_version="1.3"``) raises :class:`TlsVersionError` before any
connection. ECDSA (P-256, P-384, …) and Ed25519 keys do both versions.

Errors (all :class:`~opcard.errors.OpcardError`): see :mod:`opcard.errors`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import time
import warnings
from collections.abc import Generator, Iterable, Sequence
from enum import IntEnum, unique
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apdu.openpgp.constants import KeySlot
from opcard import arguments
from opcard.errors import (
    CLIENT_REJECTED_ALERTS,
    AlertCode,
    ClientRejectedError,
    ObjectNotFoundError,
    ServerCertificateError,
    TlsConnectError,
    TlsError,
    TlsHandshakeError,
    TlsVersionError,
)
from opcard.hashes import hash_for_curve, hash_named
from opcard.pkcs11 import KeyType
from opcard.pkcs11.mechanisms import NO_PSS_MESSAGE
from opcard.tls.keys import (
    CardTlsEcdsaKey,
    CardTlsKey,
    CardTlsRsaKey,
    tls_private_key,
)
from opcard.tls.sessions import DEFAULT_LIFETIME as DEFAULT_SESSION_LIFETIME
from opcard.tls.sessions import (
    SessionCache,
    SessionKey,
    TlsSession,
    client_identity,
    trust_identity,
)
from opcard.tls.verify import ServerVerifier, default_cafile, parse_pins, server_subject

with warnings.catch_warnings():  # see opcard.tls.keys
    warnings.simplefilter("ignore", DeprecationWarning)
    from tlslite import errors as tlslite_errors
    from tlslite.constants import (
        CipherSuite,
        ContentType,
        ExtensionType,
        HandshakeType,
        HashAlgorithm,
        SignatureScheme,
    )
    from tlslite.extensions import PreSharedKeyExtension, StatusRequestExtension
    from tlslite.handshakehelpers import HandshakeHelpers
    from tlslite.handshakesettings import HandshakeSettings
    from tlslite.messages import CertificateStatus, ClientHello
    from tlslite.tlsconnection import TLSConnection
    from tlslite.utils.codec import Parser
    from tlslite.x509 import X509
    from tlslite.x509certchain import X509CertChain

if TYPE_CHECKING:
    from opcard.session import Session

__all__ = [
    "ClientRejectedError",
    "ServerCertificateError",
    "ServerVerifier",
    "SessionCache",
    "TlsClient",
    "TlsConnectError",
    "TlsConnection",
    "TlsError",
    "TlsHandshakeError",
    "TlsSession",
    "TlsVersion",
    "TlsVersionError",
    "connect",
]


@unique
class TlsVersion(IntEnum):
    """A TLS protocol version (the value is the wire version)."""

    TLS1_2 = 0x0303
    TLS1_3 = 0x0304

    @property
    def label(self) -> str:
        """``"TLS 1.2"``."""
        return f"TLS 1.{(self.value & 0xFF) - 1}"

    @property
    def tlslite(self) -> tuple[int, int]:
        return (self.value >> 8, self.value & 0xFF)

    @classmethod
    def parse(cls, value: TlsVersion | str | int) -> TlsVersion:
        """``TLS1_2`` from ``"1.2"``, ``"TLSv1.2"``, ``"tls1.2"``, ``"TLS 1.2"`` or 0x0303."""
        if isinstance(value, TlsVersion):
            return value
        if isinstance(value, int):
            return cls(value)
        text = value.strip().lower().replace(" ", "").replace("_", ".")
        text = text.removeprefix("tlsv").removeprefix("tls")
        if text in ("1.2", "12"):
            return cls.TLS1_2
        if text in ("1.3", "13"):
            return cls.TLS1_3
        if text in ("1.0", "1", "1.1", "10", "11"):
            raise ValueError(f"TLS {text}: opcard offers TLS 1.2 and 1.3 only (RFC 8996)")
        raise ValueError(f"unknown TLS version {value!r} (1.2 or 1.3)")

    @classmethod
    def from_tlslite(cls, version: tuple[int, int]) -> TlsVersion:
        return cls((version[0] << 8) | version[1])


def _slot(value: KeySlot | str | int) -> KeySlot:
    return arguments.key_slot(value)  # KeySlot.AUT, "aut", "AUT" or 3


def _is_pss(scheme: tuple[int, int]) -> bool:
    name = SignatureScheme.toRepr(scheme)
    return name is not None and SignatureScheme.getPadding(name) == "pss"


class _CardTLSConnection(TLSConnection):  # type: ignore[misc]  # tlslite has no type hints
    """tlslite's client connection with two opcard rules.

    - The server's certificate chain is verified (``verify(ders)``) when its Certificate
      message arrives, before the client sends its own certificate or the card signs: a
      failure sends a fatal alert and ends the handshake. ``opcard_verified`` keeps the chain
      that passed, ``opcard_failure`` the error.
    - The card key's own signature schemes (the client's CertificateVerify; the list offered
      in the ClientHello for the server's signatures is left alone): no RSA-PSS for an RSA
      card key, SHA-256 first; for an ECDSA key, the hash that matches the curve first
      (SHA-256 for P-256, SHA-384 for P-384). tlslite takes the first the server accepts.
    """

    def __init__(self, sock: socket.socket, verify: _Verify | None) -> None:
        super().__init__(sock)
        self._opcard_verify = verify
        self.opcard_verified: tuple[bytes, ...] | None = None
        self.opcard_failure: ServerCertificateError | None = None
        #: ask for a stapled OCSP answer (status_request); the answer the server sent
        self.opcard_status_request = False
        self.opcard_staple: bytes | None = None
        self._opcard_hello: tuple[object, object] | None = None

    # -- OCSP stapling (RFC 6066 status_request): tlslite-ng 0.8 parses the TLS 1.3
    # certificate entry's status extension but neither asks for a staple nor reads TLS 1.2's
    # CertificateStatus message; these three hooks add both.

    def _clientSendClientHello(
        self, settings: object, session: object, *args: object
    ) -> Generator[object, None, None]:
        self._opcard_hello = (settings, session)  # for the PSK binders in _sendMsg
        yield from super()._clientSendClientHello(settings, session, *args)

    def _sendMsg(
        self, msg: object, randomizeFirstBlock: bool = True, update_hashes: bool = True
    ) -> Generator[object, None, None]:
        if (
            self.opcard_status_request
            and isinstance(msg, ClientHello)
            and msg.getExtension(ExtensionType.status_request) is None
        ):
            _add_status_request(msg, self._handshake_hash, self._opcard_hello)
        yield from super()._sendMsg(msg, randomizeFirstBlock, update_hashes)

    def _getNextRecord(self) -> Generator[object, None, None]:
        while True:
            for result in super()._getNextRecord():
                if result in (0, 1):
                    yield result
                else:
                    break
            header, parser = result
            if (
                self.opcard_status_request
                and self.opcard_staple is None
                and self.opcard_verified is None  # before the chain check: after Certificate
                and self.version <= (3, 3)
                and header.type == ContentType.handshake
                and parser.bytes[:1] == bytes([HandshakeType.certificate_status])
            ):
                # TLS 1.2: CertificateStatus follows the server's Certificate
                self._handshake_hash.update(parser.bytes)
                message = Parser(parser.bytes)
                message.get(1)
                try:
                    status = CertificateStatus().parse(message)
                except (SyntaxError, AssertionError) as e:
                    yield from self._sendError(
                        int(AlertCode.DecodeError), f"malformed CertificateStatus: {e}"
                    )
                self.opcard_staple = bytes(status.ocsp) or None
                continue
            yield result
            return

    def _clientGetKeyFromChain(
        self, certificate: object, settings: object, tack_ext: object = None
    ) -> Generator[object, None, None]:
        if self._opcard_verify is not None:
            chain = getattr(certificate, "cert_chain", None)
            ders = tuple(bytes(c.bytes) for c in getattr(chain, "x509List", None) or ())
            self.opcard_staple = self.opcard_staple or _entry_staple(certificate)
            try:
                self._opcard_verify(ders, self.opcard_staple)
            except ServerCertificateError as e:
                self.opcard_failure = e
                yield from self._sendError(int(e.alert), str(e))
            self.opcard_verified = ders
        yield from super()._clientGetKeyFromChain(certificate, settings, tack_ext)

    def _clientResume(
        self,
        session: object,
        serverHello: object,
        clientRandom: object,
        nextProto: object,
        settings: object,
    ) -> Generator[object, None, None]:
        # tlslite 0.8 takes any TLS 1.2 ServerHello as a resumption when the session holds a
        # ticket, and fails when the server refused the ticket and makes a full handshake.
        # The server echoes the session ID it resumes (RFC 5077 §3.4; opcard sends one of its
        # own with a ticket): only that is a resumption.
        sent = getattr(session, "sessionID", None)
        if not sent or getattr(serverHello, "session_id", None) != sent:
            session = None
        yield from super()._clientResume(session, serverHello, clientRandom, nextProto, settings)

    @staticmethod
    def _sigHashesToList(
        settings: object,
        privateKey: object = None,
        certList: object = None,
        version: tuple[int, int] = (3, 3),
    ) -> list[tuple[int, int]]:
        schemes: list[tuple[int, int]] = TLSConnection._sigHashesToList(
            settings, privateKey, certList, version
        )
        if isinstance(privateKey, CardTlsRsaKey):
            pkcs1 = [s for s in schemes if not _is_pss(s)]
            return sorted(pkcs1, key=lambda s: 0 if _hash_of(s) == HashAlgorithm.sha256 else 1)
        if isinstance(privateKey, CardTlsEcdsaKey):
            preferred = getattr(HashAlgorithm, hash_for_curve(len(privateKey)).name)
            return sorted(schemes, key=lambda s: 0 if _hash_of(s) == preferred else 1)
        return schemes


def _hash_of(scheme: tuple[int, int]) -> int:
    return scheme[0]


class _Verify:
    """The verification hook: the chain for ``host`` against ``verifier``."""

    def __init__(self, verifier: ServerVerifier, host: str) -> None:
        self.verifier = verifier
        self.host = host
        self.path: list[x509.Certificate] | None = None

    def __call__(self, chain: Sequence[bytes], ocsp_response: bytes | None = None) -> None:
        self.path = self.verifier.verify(chain, self.host, ocsp_response=ocsp_response)


def _entry_staple(certificate: object) -> bytes | None:
    """TLS 1.3: the OCSP answer in the status_request extension of the server certificate's
    entry (tlslite-ng parses it into a CertificateStatusExtension)."""
    entries = getattr(certificate, "certificate_list", None) or []
    extensions = (getattr(entries[0], "extensions", None) or []) if entries else []
    for extension in extensions:
        if extension.extType == ExtensionType.status_request:
            response = getattr(extension, "response", None)
            return bytes(response) if response else None
    return None


def _add_status_request(
    hello: ClientHello, hashes: object, sent: tuple[object, object] | None
) -> None:
    """Ask for an OCSP staple: a status_request extension (type ocsp, no responder ids, no
    request extensions), before the pre_shared_key extension, which must stay last and whose
    binders sign the ClientHello and so are computed again."""
    extension = StatusRequestExtension().create()
    last = hello.extensions[-1] if hello.extensions else None
    if isinstance(last, PreSharedKeyExtension):
        hello.extensions.insert(len(hello.extensions) - 1, extension)
        settings, session = sent if sent is not None else (None, None)
        HandshakeHelpers.update_binders(
            hello,
            hashes,
            getattr(settings, "pskConfigs", []),
            getattr(session, "tickets", None) if session else None,
            getattr(session, "resumptionMasterSecret", None) if session else None,
        )
    else:
        hello.extensions.append(extension)


def _alert_name(code: int) -> str:
    try:
        return f"{AlertCode(code).label} ({code})"
    except ValueError:
        return f"alert {code}"


def _handshake_error(
    err: tlslite_errors.BaseTLSException, key: CardTlsKey, max_version: TlsVersion
) -> TlsError:
    """The opcard exception for a failed handshake."""
    if isinstance(err, tlslite_errors.TLSRemoteAlert):
        code = int(err.description)
        name = _alert_name(code)
        if code in CLIENT_REJECTED_ALERTS:
            return ClientRejectedError(
                f"the server refused the client certificate or its signature: alert {name} "
                "(does the server trust the CA that issued the card's certificate?)",
                code,
                remote=True,
            )
        hint = ""
        if code == AlertCode.ProtocolVersion and max_version is TlsVersion.TLS1_2:
            hint = " (the client offered TLS 1.2 at most"
            if key.key_type == "rsa":
                hint += ": the card key is RSA, and " + NO_PSS_MESSAGE
            hint += ")"
        return TlsHandshakeError(
            f"the server ended the handshake: alert {name}{hint}", code, remote=True
        )
    if isinstance(err, tlslite_errors.TLSLocalAlert):
        code = int(err.description)
        detail = f": {err.message}" if getattr(err, "message", None) else ""
        return TlsHandshakeError(
            f"the handshake failed on our side, alert {_alert_name(code)} sent{detail}", code
        )
    if isinstance(err, tlslite_errors.TLSAbruptCloseError):
        return TlsHandshakeError(
            "the server closed the connection during the handshake (it may not speak TLS, or "
            "it refused the client without an alert)"
        )
    return TlsHandshakeError(f"the TLS handshake failed: {type(err).__name__}: {err}")


class TlsClient:
    """TLS client credentials on the card, and the connection settings.

    Everything that can be checked without the network is checked here, before any
    connection and without a PIN: the slot holds a key and a certificate for it, the key can
    sign in TLS, the versions suit the key, the CA file reads. :meth:`connect` then needs the
    session logged in (user PIN) and costs, per handshake, one card signature (one APDU).

    Parameters:

    - ``slot``: ``"aut"`` (default, INTERNAL AUTHENTICATE) or ``"sig"`` (PSO:COMPUTE DIGITAL
      SIGNATURE; with a card that asks for the PIN before every signature, two APDUs).
    - ``cafile`` / ``cadata``: the CA certificates (PEM bundle, or one DER certificate) the
      server's chain must lead to; default: the system's bundle. ``verify=False`` turns the
      verification off (the connection is then open to any man in the middle).
    - ``pinned_keys``: curl's ``--pinnedpubkey``: SHA-256 hashes of the server's
      SubjectPublicKeyInfo (``"sha256//BASE64;sha256//BASE64"`` or the raw 32-byte digests).
      Alone (no ``cafile``/``cadata``) only the server's key is checked, not its chain, dates
      or name; with a CA file both must hold.
    - ``alpn``: protocols to offer (``["h2", "http/1.1"]``).
    - ``min_version`` / ``max_version``: ``"1.2"`` / ``"1.3"`` (defaults 1.2 and the highest
      the key can do: 1.3 for ECC keys, 1.2 for RSA keys).
    - ``extra_certificates``: DER or PEM certificates sent after the card's (intermediate CAs).
    - ``confirm_timeout``: in TLS 1.3 the server judges the client certificate after the
      client's last handshake message; :meth:`connect` waits this long for the server's
      first message (a session ticket, or the alert that refuses the client) so that a
      refusal is an error of ``connect`` and not of the first read. None: do not wait.
    - ``session_cache``: a :class:`~opcard.tls.sessions.SessionCache`; each full handshake's
      session is kept there and the next connection to the same server, server name, card
      certificate and trust settings resumes it: no card signature (see :meth:`connect`).
      None (default): no resumption unless a session is given to :meth:`connect`.
    - ``crlfile``: CRLs (PEM, several, or one DER) the server certificate is checked against
      (``openssl -crl_check``); ``crl_check_all``: every certificate of the path
      (``-crl_check_all``). A checked certificate without a CRL from its issuer is refused.
    - ``ocsp_status``: ask for a stapled OCSP answer and require it to say "good" (curl's
      ``--cert-status``): revoked, unknown, badly signed, stale or missing answers are
      refused. The staple comes only in a full handshake, so a cached session is not
      resumed (it cannot pass the check again).
    """

    def __init__(
        self,
        session: Session,
        *,
        slot: KeySlot | str | int = KeySlot.AUT,
        cafile: str | os.PathLike[str] | None = None,
        cadata: bytes | None = None,
        verify: bool = True,
        pinned_keys: str | Sequence[bytes] | None = None,
        alpn: Iterable[str] = (),
        min_version: TlsVersion | str = TlsVersion.TLS1_2,
        max_version: TlsVersion | str | None = None,
        extra_certificates: Sequence[bytes] = (),
        confirm_timeout: float | None = 1.0,
        session_cache: SessionCache | None = None,
        crlfile: str | os.PathLike[str] | None = None,
        crl_check_all: bool = False,
        ocsp_status: bool = False,
    ) -> None:
        self.session = session
        #: resumable sessions (None: every handshake is a full one, see :meth:`connect`)
        self.session_cache = session_cache
        self.slot = _slot(slot)
        if self.slot is KeySlot.DEC:
            raise ValueError(
                "the DEC key decrypts: TLS client authentication signs with aut or sig"
            )
        card = session.card
        public = card.public_key(self.slot)
        if public is None:
            raise ObjectNotFoundError(f"there is no key in the {self.slot.name} slot")
        if public.key_type not in (KeyType.RSA, KeyType.EC, KeyType.EC_EDWARDS):
            raise TlsError(
                f"the {self.slot.name} key ({public.algorithm}) cannot sign: TLS client "
                "authentication needs an RSA, ECDSA or Ed25519 key"
            )
        self.key_type = public.key_type
        self.key_algorithm = str(public.algorithm)
        der = card.certificate(self.slot)
        if not der:
            raise ObjectNotFoundError(
                f"there is no certificate in the {self.slot.name} slot: TLS client "
                "authentication sends it to the server (store one with "
                f"session.store_certificate({self.slot.name.lower()!r}, certificate))"
            )
        try:
            self.certificate = x509.load_der_x509_certificate(der)
        except ValueError as e:
            raise TlsError(f"the {self.slot.name} certificate on the card is malformed: {e}") from e
        if _spki(self.certificate.public_key()) != _spki(public.to_cryptography()):
            raise TlsError(
                f"the certificate in the {self.slot.name} slot "
                f"({self.certificate.subject.rfc4514_string()}) is not for the "
                f"{self.slot.name} key: replace the certificate or the key"
            )
        self.min_version, self.max_version = _version_range(
            min_version, max_version, rsa=public.key_type is KeyType.RSA
        )
        self.verifier: ServerVerifier | None = None
        pins = parse_pins(pinned_keys) if isinstance(pinned_keys, str) else pinned_keys
        if verify and pins and cafile is None and cadata is None:
            self.verifier = ServerVerifier.pinned(pins)  # the key only, as curl -k does
        elif verify:
            if cadata is not None:
                self.verifier = ServerVerifier.from_pem(cadata)
            else:
                path = cafile if cafile is not None else default_cafile()
                if path is None:
                    raise TlsError(
                        "no CA certificates to verify the server with: give a CA file "
                        "(the system has no default bundle)"
                    )
                self.verifier = ServerVerifier.from_cafile(path)
            if pins:
                self.verifier = self.verifier.with_pins(pins)
        self._revocation(crlfile, crl_check_all, ocsp_status)
        self.alpn = [_alpn_name(p) for p in alpn]
        self._chain = X509CertChain([_tlslite_x509(der)])
        for extra in extra_certificates:
            for cert in _certificates(extra):
                self._chain.x509List.append(
                    _tlslite_x509(cert.public_bytes(serialization.Encoding.DER))
                )
        self.confirm_timeout = confirm_timeout
        self._key: CardTlsKey | None = None
        self._trust_id: str | None = None
        self._client_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"<TlsClient {self.slot.name} {self.key_algorithm} "
            f"{self.min_version.label}-{self.max_version.label}>"
        )

    def _revocation(
        self, crlfile: str | os.PathLike[str] | None, check_all: bool, ocsp_status: bool
    ) -> None:
        """CRLs (``crlfile``: the server certificate, or every certificate of the path with
        ``crl_check_all``) and a stapled OCSP answer (``ocsp_status``), both fail closed (see
        :mod:`opcard.tls.revocation`)."""
        if crlfile is None and not check_all and not ocsp_status:
            return
        if check_all and crlfile is None:
            raise ValueError("crl_check_all needs a CRL file (crlfile)")
        if self.verifier is None:
            raise ValueError("revocation checks need the server's certificate verified")
        from opcard.tls.revocation import load_crls

        crls = load_crls(crlfile) if crlfile is not None else ()
        self.verifier = self.verifier.with_revocation(
            crls=crls,
            crl_check=("all" if check_all else "leaf") if crls else None,
            require_ocsp=ocsp_status,
        )

    def tls_key(self) -> CardTlsKey:
        """The tlslite key object (made once; needs the session logged in)."""
        if self._key is None or not self.session.user_logged_in:
            self._key = tls_private_key(self.session, self.slot)
        return self._key

    def settings(self) -> HandshakeSettings:
        """tlslite's settings for a handshake with this client."""
        settings = HandshakeSettings()
        settings.minVersion = self.min_version.tlslite
        settings.maxVersion = self.max_version.tlslite
        # tlslite-ng 0.8 compresses the client Certificate (RFC 8879) whenever its own
        # ClientHello offered compression, not when the server's CertificateRequest asks for
        # it; OpenSSL 3.0 and GnuTLS then abort with unexpected_message. The client
        # certificate is small: never compress it.
        settings.certificate_compression_send = []
        settings.use_heartbeat_extension = False
        return settings

    def connect(
        self,
        host: str,
        port: int,
        *,
        server_name: str | None = None,
        timeout: float | None = 30.0,
        session: TlsSession | None = None,
    ) -> TlsConnection:
        """Connect to ``host``:``port`` and make the TLS handshake.

        ``server_name`` (default ``host``) is sent as SNI (not when it is an IP address) and is
        the name the server certificate must carry. ``timeout`` bounds each network wait.

        ``session``: a session to resume (``conn.session`` of an earlier connection, or
        :meth:`TlsSession.load`); without it, the newest fitting one of ``session_cache``.
        A session is offered only when it was made for this host, port and server name, with
        this card, slot and certificate, under the same trust settings, and when the server
        chain it was made with passes the current verification again; otherwise (or when the
        server declines) the handshake is a full one. ``conn.resumed`` tells which;
        ``conn.session_refused`` says why a given session was not offered.
        """
        key = self.tls_key()  # a missing login fails here, before any connection
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TlsConnectError(f"cannot connect to {host}:{port}: {_os_reason(e)}") from e
        try:
            return self._handshake(
                sock, server_name or host, key, timeout, session=session, address=(host, port)
            )
        except BaseException:
            sock.close()
            raise

    def wrap_socket(
        self,
        sock: socket.socket,
        *,
        server_name: str,
        timeout: float | None = 30.0,
        session: TlsSession | None = None,
    ) -> TlsConnection:
        """Make the TLS handshake on a connected socket (closed when the connection closes).
        Sessions are bound to the socket's peer address (IP and port) and ``server_name``."""
        return self._handshake(sock, server_name, self.tls_key(), timeout, session=session)

    # -- sessions ---------------------------------------------------------------------------

    def session_key(self, host: str, port: int, server_name: str | None = None) -> SessionKey:
        """What a session of this client with ``host``:``port`` is bound to."""
        if self._trust_id is None:
            verifier = self.verifier
            if verifier is None:
                self._trust_id = trust_identity(None, (), True)
            else:
                anchors = [
                    a.public_bytes(serialization.Encoding.DER) for a in verifier.trust_anchors
                ]
                self._trust_id = trust_identity(anchors, verifier.pins, verifier.check_chain)
        if self._client_id is None:
            self._client_id = client_identity(
                bytes(self.session.card.aid),
                self.slot.name,
                self.certificate.public_bytes(serialization.Encoding.DER),
            )
        name = (server_name or host).strip("[]").rstrip(".").lower()
        return SessionKey(
            host=host.strip("[]").lower(),
            port=int(port),
            server_name=name,
            client=self._client_id,
            trust=self._trust_id,
        )

    def _session_to_offer(
        self, wanted: SessionKey, given: TlsSession | None, name: str
    ) -> tuple[TlsSession | None, object, list[x509.Certificate] | None, str | None]:
        """(the session, the tlslite session to offer, its re-verified path, why a given
        session is not offered)."""
        low, high = self.min_version.value, self.max_version.value
        candidate = given
        if candidate is None and self.session_cache is not None:
            candidate = self.session_cache.get(wanted, (low, high))
        if candidate is None:
            return None, None, None, None
        # not for this connection (another server, client or trust, this client's versions,
        # suites or OCSP rule), though perhaps for another: kept in the cache
        unfit = candidate.key.describe_difference(wanted)
        if unfit is None and not low <= candidate.version <= high:
            unfit = f"it is a {candidate.version_label} session"
        if unfit is None and candidate.cipher_suite not in _offered_suites(self.settings()):
            unfit = "its cipher suite is not offered"
        if unfit is None and self.verifier is not None and self.verifier.require_ocsp:
            unfit = "an OCSP answer is required (ocsp_status) and a resumed handshake carries none"
        if unfit is not None:
            return None, None, None, unfit
        # useless now for anyone: dropped from the cache
        why = None
        if not candidate.resumable:
            why = "it has expired" if candidate.expired() else "it holds no usable ticket"
        path: list[x509.Certificate] | None = None
        if why is None and self.verifier is not None:
            try:
                path = self.verifier.verify(candidate.server_chain, name)
            except ServerCertificateError as e:
                why = f"its server certificate does not pass verification now: {e}"
        offered = candidate._offer() if why is None else None
        if offered is not None:  # the name it is offered for (a file's own is not trusted)
            offered.serverName = None if _is_ip(name) else name.rstrip(".")
        if why is None and offered is None:
            why = "it holds no usable ticket"
        if why is not None:
            if self.session_cache is not None:
                self.session_cache.discard(candidate)
            return None, None, None, why
        return candidate, offered, path, None

    def _handshake(
        self,
        sock: socket.socket,
        name: str,
        key: CardTlsKey,
        timeout: float | None,
        *,
        session: TlsSession | None = None,
        address: tuple[str, int] | None = None,
    ) -> TlsConnection:
        server_subject(name)  # refuses a malformed name before the handshake
        sni = None if _is_ip(name) else name.rstrip(".")
        hook = _Verify(self.verifier, name) if self.verifier is not None else None
        if address is None:
            peer = sock.getpeername()
            address = (str(peer[0]), int(peer[1]))
        wanted = self.session_key(address[0], address[1], name)
        resuming, offered, resumed_path, refused = self._session_to_offer(wanted, session, name)
        sock.settimeout(timeout)
        tls = _CardTLSConnection(sock, hook)
        tls.opcard_status_request = self.verifier is not None and self.verifier.require_ocsp
        signatures = key.signatures
        started = time.perf_counter()
        try:
            tls.handshakeClientCert(
                self._chain,
                key,
                session=offered,
                settings=self.settings(),
                serverName=sni,
                alpn=[p.encode() for p in self.alpn] or None,
            )
        except tlslite_errors.BaseTLSException as e:
            if tls.opcard_failure is not None:
                raise tls.opcard_failure from e
            raise _handshake_error(e, key, self.max_version) from e
        except OSError as e:
            raise TlsConnectError(
                f"the connection broke during the handshake: {_os_reason(e)}"
            ) from e
        elapsed = time.perf_counter() - started
        resumed = bool(tls.resumed) and resuming is not None
        if resumed:
            assert resuming is not None
            if self.session_cache is not None:
                self.session_cache.discard(resuming)
            return self._resumed_connection(
                tls, sock, name, key, resuming, resumed_path, elapsed, refused
            )
        if resuming is not None:
            if self.session_cache is not None:  # the server declined it: useless now
                self.session_cache.discard(resuming)
            refused = "the server declined it (full handshake)"
        server_ders = tuple(bytes(c.bytes) for c in tls.session.serverCertChain.x509List)
        verified: list[x509.Certificate] | None = None
        if hook is not None:
            if tls.opcard_verified != server_ders or hook.path is None:
                # the early check did not run on this chain (a tlslite change?): check now
                try:
                    hook(server_ders, tls.opcard_staple)
                except ServerCertificateError:
                    with contextlib.suppress(tlslite_errors.BaseTLSException, OSError):
                        for _ in tls._sendError(int(AlertCode.BadCertificate)):
                            pass
                    raise
            verified = hook.path
        connection = TlsConnection(
            tls,
            sock,
            server_name=name,
            server_chain=[x509.load_der_x509_certificate(d) for d in server_ders],
            verified_chain=verified,
            client_certificate=self.certificate if key.signatures > signatures else None,
            card_signatures=key.signatures - signatures,
            client_hash=key.last_hash if key.signatures > signatures else None,
            handshake_seconds=elapsed,
            max_version=self.max_version,
            key=key,
        )
        connection.session_refused = refused
        connection.ocsp_response = tls.opcard_staple
        connection.session = self._new_session(tls, wanted, server_ders)
        connection._collect_tickets = (
            self.session_cache is not None and connection.version is TlsVersion.TLS1_3
        )
        if connection.session is not None and self.session_cache is not None:
            self.session_cache.add(connection.session)
        if (
            connection.version is TlsVersion.TLS1_3
            and connection.card_signatures
            and self.confirm_timeout is not None
        ):
            connection._await_server(self.confirm_timeout)
        return connection

    def _session_lifetime(self) -> float:
        cache = self.session_cache
        return cache.lifetime if cache is not None else DEFAULT_SESSION_LIFETIME

    def _new_session(
        self, tls: _CardTLSConnection, wanted: SessionKey, server_ders: Sequence[bytes]
    ) -> TlsSession | None:
        """The session of a full handshake (its TLS 1.3 tickets arrive after it, into the
        list the session holds)."""
        if tls.session is None or not server_ders:
            return None
        now = time.time()
        return TlsSession(
            tls.session,
            key=wanted,
            version=TlsVersion.from_tlslite(tls.version).value,
            server_chain=server_ders,
            created=now,
            expires=now + self._session_lifetime(),
        )

    def _resumed_connection(
        self,
        tls: _CardTLSConnection,
        sock: socket.socket,
        name: str,
        key: CardTlsKey,
        resumed: TlsSession,
        path: list[x509.Certificate] | None,
        elapsed: float,
        refused: str | None,
    ) -> TlsConnection:
        version = TlsVersion.from_tlslite(tls.version)
        session = tls.session
        if version is TlsVersion.TLS1_2 and tls.tls_1_0_tickets:
            session.tls_1_0_tickets = list(tls.tls_1_0_tickets)  # a new ticket came
        if version is TlsVersion.TLS1_3:
            # tlslite made a new session (new resumption secret; the tickets for it arrive
            # after the handshake); it knows no certificates: the first handshake's are kept
            session.serverCertChain = resumed._session.serverCertChain
            session.clientCertChain = resumed._session.clientCertChain
        derived = resumed._derived(session, version.value)
        connection = TlsConnection(
            tls,
            sock,
            server_name=name,
            server_chain=[x509.load_der_x509_certificate(d) for d in resumed.server_chain],
            verified_chain=path,
            client_certificate=None,
            card_signatures=0,
            client_hash=None,
            handshake_seconds=elapsed,
            max_version=self.max_version,
            key=key,
        )
        connection.resumed = True
        connection.session_refused = refused
        connection.session = derived
        connection._collect_tickets = (
            self.session_cache is not None and version is TlsVersion.TLS1_3
        )
        if self.session_cache is not None:
            if version is TlsVersion.TLS1_3 and resumed.resumable:
                self.session_cache.add(resumed)  # its other tickets, until new ones come
            self.session_cache.add(derived)
        return connection


class TlsConnection:
    """An established TLS connection (made by :meth:`TlsClient.connect`).

    Attributes: ``version`` (:class:`TlsVersion`), ``cipher`` (IANA name), ``alpn`` (the
    protocol the server chose, or None), ``server_chain`` (the certificates the server sent),
    ``verified_chain`` (the validated path up to the trust anchor; None without
    verification), ``server_certificate``, ``client_certificate`` (the card's certificate
    when the server asked for one, else None), ``card_signatures`` (card signatures made in
    the handshake: 1 when the client authenticated), ``client_signature`` (e.g. ``"ECDSA with
    SHA-256"``), ``handshake_seconds``.

    Use it as a context manager; ``close()`` sends close_notify and closes the socket.
    """

    #: the OCSP answer (DER) the server stapled when the client asked for one, else None
    ocsp_response: bytes | None = None

    def __init__(
        self,
        tls: _CardTLSConnection,
        sock: socket.socket,
        *,
        server_name: str,
        server_chain: list[x509.Certificate],
        verified_chain: list[x509.Certificate] | None,
        client_certificate: x509.Certificate | None,
        card_signatures: int,
        client_hash: str | None,
        handshake_seconds: float,
        max_version: TlsVersion,
        key: CardTlsKey,
    ) -> None:
        self._tls = tls
        self._sock = sock
        self._timeout = sock.gettimeout()
        self._key = key
        self._max_version = max_version
        self._buffer = bytearray()
        self._reader: Generator[object, None, None] | None = None
        self.server_name = server_name
        self.version = TlsVersion.from_tlslite(tls.version)
        self.cipher: str = CipherSuite.ietfNames.get(tls.session.cipherSuite, tls.getCipherName())
        proto = tls.session.appProto
        self.alpn: str | None = bytes(proto).decode("ascii", "replace") if proto else None
        self.server_chain = server_chain
        self.verified_chain = verified_chain
        self.client_certificate = client_certificate
        self.card_signatures = card_signatures
        self.client_signature = _signature_label(key, client_hash)
        self.handshake_seconds = handshake_seconds
        #: the server closed the connection without close_notify (see read_until_close)
        self.truncated = False
        #: the handshake resumed an earlier session: no card signature, no certificates sent
        self.resumed = False
        #: the session of this connection, to resume later (TLS 1.3: once a ticket came)
        self.session: TlsSession | None = None
        #: why the session given to connect() (or the cache's) was not offered, or was
        #: declined by the server; None when there was none or it was resumed
        self.session_refused: str | None = None
        self._collect_tickets = False

    @property
    def server_certificate(self) -> x509.Certificate:
        return self.server_chain[0]

    @property
    def closed(self) -> bool:
        return bool(self._tls.closed)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<TlsConnection {self.server_name} {self.version.label} {self.cipher} {state}>"

    def __enter__(self) -> TlsConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data -------------------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""
        try:
            self._tls.write(bytes(data))
        except tlslite_errors.BaseTLSException as e:
            raise self._error(e) from e
        except OSError as e:
            raise TlsConnectError(f"sending failed: {_os_reason(e)}") from e

    def recv(self, bufsize: int = 65536, *, timeout: float | None = None) -> bytes:
        """Up to ``bufsize`` bytes from the server; b"" when it closed the connection.

        ``timeout`` (default: the connection's timeout) bounds the wait; when nothing came in
        time, :class:`TlsConnectError` is raised.
        """
        wait = self._timeout if timeout is None else timeout
        while not self._buffer and not self.closed:
            if not self._step(wait):
                raise TlsConnectError(f"no data from the server within {wait} s")
        data = bytes(self._buffer[:bufsize])
        del self._buffer[:bufsize]
        return data

    def read_until_close(self, idle_timeout: float = 5.0, limit: int = 1 << 24) -> bytes:
        """Everything the server sends until it closes the connection, until it stays silent
        for ``idle_timeout`` seconds, or until ``limit`` bytes.

        A server that closes the TCP connection without close_notify ends the answer too
        (many HTTP/1.0 servers do); ``truncated`` is then True: the answer may be cut."""
        while not self.closed and len(self._buffer) < limit:
            try:
                if not self._step(idle_timeout):
                    break
            except TlsConnectError as e:
                if not isinstance(e.__cause__, tlslite_errors.TLSAbruptCloseError):
                    raise
                self.truncated = True
                break
        data = bytes(self._buffer[:limit])
        del self._buffer[:limit]
        return data

    def wait_for_session(self, timeout: float = 1.0) -> TlsSession | None:
        """TLS 1.3: the server sends its session tickets after the handshake; wait up to
        ``timeout`` for one (application data that comes meanwhile is kept for ``recv``).
        Returns :attr:`session` when it can be resumed, else None."""
        session = self.session
        if session is None:
            return None
        deadline = time.monotonic() + timeout
        while not session.resumable and not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                if not self._step(remaining):
                    break
            except TlsError:
                break
        return session if session.resumable else None

    def close(self) -> None:
        """Send close_notify and close the socket (errors while closing are ignored)."""
        if self._collect_tickets and not self.closed and self.session is not None:
            # TLS 1.3 with a session cache: the server's tickets come after the handshake
            # (OpenSSL and GnuTLS send two at once); take those on their way for the next
            # resumptions, briefly
            self._collect_tickets = False
            with contextlib.suppress(TlsError):
                self.wait_for_session(0.2)
                while not self.closed and self._step(0.02):
                    pass
        if not self.closed:
            with contextlib.suppress(tlslite_errors.BaseTLSException, OSError):
                self._sock.settimeout(min(self._timeout or 5.0, 5.0))
                self._tls.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- internals --------------------------------------------------------------------------

    def _step(self, timeout: float | None) -> bool:
        """Process one message from the server (application data is buffered); False when
        none arrived within ``timeout``. A read interrupted by the timeout resumes later."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._reader is None:
            self._reader = self._tls.readAsync(None, 0)
        self._sock.setblocking(False)
        try:
            for result in self._reader:
                if isinstance(result, int):  # 0: wants to read, 1: wants to write
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    readers = [self._sock] if result == 0 else []
                    writers = [self._sock] if result == 1 else []
                    ready = select.select(readers, writers, [], remaining)
                    if not any(ready):
                        return False
                    continue
                assert isinstance(result, bytes | bytearray)
                self._buffer += result
                self._reader = None
                return True
            self._reader = None
            return True
        except tlslite_errors.BaseTLSException as e:
            self._reader = None
            raise self._error(e) from e
        except OSError as e:
            self._reader = None
            raise TlsConnectError(f"receiving failed: {_os_reason(e)}") from e
        finally:
            if self._sock.fileno() >= 0:
                self._sock.settimeout(self._timeout)

    def _await_server(self, timeout: float) -> None:
        """TLS 1.3: wait for the server's first message after the handshake (a session ticket
        or data means it accepted the client; an alert that it refused it)."""
        try:
            self._step(timeout)
        except TlsError:
            self.close()
            raise

    def _error(self, err: tlslite_errors.BaseTLSException) -> TlsError:
        if isinstance(err, tlslite_errors.TLSAbruptCloseError):
            return TlsConnectError(
                "the server closed the connection without close_notify (data may be truncated)"
            )
        return _handshake_error(err, self._key, self._max_version)


def connect(
    session: Session,
    host: str,
    port: int,
    *,
    server_name: str | None = None,
    timeout: float | None = 30.0,
    slot: KeySlot | str | int = KeySlot.AUT,
    cafile: str | os.PathLike[str] | None = None,
    cadata: bytes | None = None,
    verify: bool = True,
    alpn: Iterable[str] = (),
    min_version: TlsVersion | str = TlsVersion.TLS1_2,
    max_version: TlsVersion | str | None = None,
    extra_certificates: Sequence[bytes] = (),
    confirm_timeout: float | None = 1.0,
    session_cache: SessionCache | None = None,
    tls_session: TlsSession | None = None,
    crlfile: str | os.PathLike[str] | None = None,
    crl_check_all: bool = False,
    ocsp_status: bool = False,
) -> TlsConnection:
    """One connection: ``TlsClient(session, …).connect(host, port, …)`` (see both);
    ``tls_session`` is ``connect``'s ``session`` (``session`` is the card's here)."""
    client = TlsClient(
        session,
        slot=slot,
        cafile=cafile,
        cadata=cadata,
        verify=verify,
        alpn=alpn,
        min_version=min_version,
        max_version=max_version,
        extra_certificates=extra_certificates,
        confirm_timeout=confirm_timeout,
        session_cache=session_cache,
        crlfile=crlfile,
        crl_check_all=crl_check_all,
        ocsp_status=ocsp_status,
    )
    return client.connect(host, port, server_name=server_name, timeout=timeout, session=tls_session)


# --- helpers --------------------------------------------------------------------------------


def _offered_suites(settings: HandshakeSettings) -> set[int]:
    """The cipher suites tlslite's ClientHello offers with certificates (as it lists them)."""
    valid = settings.validate()
    suites: list[int] = []
    for getter in (
        CipherSuite.getTLS13Suites,
        CipherSuite.getEcdsaSuites,
        CipherSuite.getEcdheCertSuites,
        CipherSuite.getDheCertSuites,
        CipherSuite.getCertSuites,
        CipherSuite.getDheDsaSuites,
    ):
        suites += getter(valid)
    return set(suites)


def _version_range(
    low: TlsVersion | str, high: TlsVersion | str | None, *, rsa: bool
) -> tuple[TlsVersion, TlsVersion]:
    lo = TlsVersion.parse(low)
    hi = TlsVersion.TLS1_3 if high is None else TlsVersion.parse(high)
    if rsa:
        if lo is TlsVersion.TLS1_3:
            raise TlsVersionError(f"TLS 1.3 with an RSA card key: {NO_PSS_MESSAGE}")
        hi = TlsVersion.TLS1_2
    if lo > hi:
        raise ValueError(f"the minimum version {lo.label} is above the maximum {hi.label}")
    return lo, hi


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:
        return b""
    der: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _tlslite_x509(der: bytes) -> X509:
    cert = X509()
    try:
        cert.parseBinary(bytearray(der))
    except (SyntaxError, ValueError, IndexError) as e:  # tlslite's parser errors
        raise TlsError(f"tlslite-ng cannot read the certificate: {e}") from e
    return cert


def _certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise TlsError(f"not an X.509 certificate (PEM or DER): {e}") from e


def _alpn_name(protocol: str) -> str:
    encoded = protocol.encode()
    if not 0 < len(encoded) < 256:
        raise ValueError(f"ALPN protocol names are 1 to 255 bytes, not {protocol!r}")
    return protocol


def _is_ip(name: str) -> bool:
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _os_reason(err: OSError) -> str:
    if isinstance(err, TimeoutError | socket.timeout):
        return "timed out"
    return err.strerror or str(err) or type(err).__name__


def _signature_label(key: CardTlsKey, hash_name: str | None) -> str | None:
    if hash_name is None:
        return None
    if key.key_type == "Ed25519":
        return "Ed25519"
    algorithm = "RSA PKCS#1 v1.5" if key.key_type == "rsa" else "ECDSA"
    row = hash_named(hash_name)
    return f"{algorithm} with {row.label if row else hash_name}"
