"""``opcard tls connect``: a TLS connection authenticated with the card (like ``openssl
s_client``): handshake, negotiated version, cipher, certificates; optionally a request and its
answer."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from opcard.cli.common import binary_stdout, echo, echo_json, pass_state, shown
from opcard.cli.pin_input import USER, read_pin, user_pin_options

if TYPE_CHECKING:
    from cryptography import x509

    from opcard.cli.common import State
    from opcard.tls import TlsClient, TlsConnection, TlsSession

__all__ = ["tls"]

SCHEMA_VERSION = 1
_VERSIONS = ("1.2", "1.3")


@click.group()
def tls() -> None:
    """TLS client authentication with the card's certificate and key."""


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) → (host, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if match is None:
        raise click.BadParameter(
            f"{text!r}: give HOST:PORT (an IPv6 address in brackets: [::1]:443)",
            param_hint="HOST:PORT",
        )
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise click.BadParameter(f"port {port} is out of range", param_hint="HOST:PORT")
    return host, port


_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|[nrt0\\])")


def unescape(text: str) -> bytes:
    r"""``--send`` text → bytes: ``\r``, ``\n``, ``\t``, ``\0``, ``\\`` and ``\xHH`` (one
    byte) are decoded; everything else is sent as UTF-8."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode()
        body = match.group(1)
        out += bytes([int(body[1:], 16)]) if body[0] == "x" else _ESCAPES[body]
        position = match.end()
    out += text[position:].encode()
    return bytes(out)


@tls.command()
@click.argument("address", metavar="HOST:PORT")
@click.option(
    "--slot",
    type=click.Choice(["aut", "sig"], case_sensitive=False),
    default="aut",
    show_default=True,
    help="Key slot whose key and certificate authenticate the client.",
)
@click.option(
    "--cafile",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="CA certificates (PEM) the server's certificate must chain to [default: the "
    "system's CA bundle].",
)
@click.option(
    "--pinnedpubkey",
    metavar="HASHES",
    help="Public key pins as curl takes them: sha256//BASE64 (SHA-256 of the server's "
    "SubjectPublicKeyInfo), several separated by ';'. The server's key must match one. "
    "Without --cafile only the key is checked (not the chain, dates or name); with "
    "--cafile both must hold.",
)
@click.option(
    "--crlfile",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="CRLs (PEM, several in one file, or one DER CRL) to check the server's certificate "
    "against, as openssl -CRLfile with -crl_check: a revoked certificate is refused, and so is "
    "one whose issuer has no valid CRL in FILE (expired, not yet valid, badly signed).",
)
@click.option(
    "--crl-check-all",
    is_flag=True,
    help="With --crlfile: check every certificate of the chain up to the root, not only the "
    "server's (openssl -crl_check_all); each issuer then needs a CRL in FILE.",
)
@click.option(
    "--status",
    "ocsp_status",
    is_flag=True,
    help="Ask the server for its stapled OCSP answer and require it (like curl "
    "--cert-status): a revoked or unknown status, a stale or badly signed answer, or no "
    "answer at all is refused. Every handshake is then a full one.",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not verify the server's certificate (insecure: anyone in the middle can read "
    "and change the traffic).",
)
@click.option(
    "--servername",
    metavar="NAME",
    help="Server name sent as SNI and checked in the server's certificate [default: HOST].",
)
@click.option(
    "--alpn",
    metavar="PROTOCOLS",
    multiple=True,
    help="Application protocols to offer, comma-separated or repeated (h2,http/1.1).",
)
@click.option(
    "--tls-min",
    type=click.Choice(_VERSIONS),
    default="1.2",
    show_default=True,
    help="Lowest TLS version to accept.",
)
@click.option(
    "--tls-max",
    type=click.Choice(_VERSIONS),
    default=None,
    help="Highest TLS version to offer [default: 1.3; 1.2 with an RSA key, which cannot do "
    "TLS 1.3 (RSA-PSS)].",
)
@click.option(
    "--send",
    metavar="TEXT",
    help=r"Send TEXT after the handshake (escapes \r \n \t \0 \\ \xHH) and print the answer.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="With --send: stop reading the answer after SECONDS of silence.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Bound of each network wait during the connection and the handshake.",
)
@click.option(
    "--reconnect",
    type=click.IntRange(min=0, max=1000),
    default=0,
    metavar="N",
    help="After the first handshake, connect N more times resuming its session (like openssl "
    "s_client -reconnect) and print each handshake: full or resumed, time, card APDUs. A "
    "resumed handshake costs the card nothing. With --send, the request goes on the last "
    "connection.",
)
@click.option(
    "--sess-out",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Save the TLS session to FILE (mode 0600, replaced atomically) to resume it with "
    "--sess-in. RISK: the file holds the session's secret (TLS 1.2 master secret, TLS 1.3 "
    "resumption secret): whoever reads it can resume the session as you, without the card "
    "and without the PIN, for as long as the server accepts it (opcard itself stops "
    "offering it 2 hours after the full handshake).",
)
@click.option(
    "--sess-in",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Resume the session saved with --sess-out (refused if others can read or write the "
    "file). A session made for another server, server name, card certificate or trust "
    "setting, or expired, is not offered: full handshake, with a warning.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the answer (with --send).")
@click.option("--json", "as_json", is_flag=True, help="JSON output (with schema_version).")
@user_pin_options
@pass_state
def connect(
    state: State,
    address: str,
    slot: str,
    cafile: str | None,
    pinnedpubkey: str | None,
    crlfile: str | None,
    crl_check_all: bool,
    ocsp_status: bool,
    no_verify: bool,
    servername: str | None,
    alpn: tuple[str, ...],
    tls_min: str,
    tls_max: str | None,
    send: str | None,
    wait: float,
    timeout: float,
    reconnect: int,
    sess_out: str | None,
    sess_in: str | None,
    quiet: bool,
    as_json: bool,
    pin: str | None,
    pin_file: str | None,
) -> None:
    """Connect to HOST:PORT with TLS, authenticating with the card's key and certificate.

    Shows the negotiated version and cipher and both certificates; with --send, sends a
    request and prints the answer. The card signs once per handshake (one APDU after the
    PIN). The server's certificate is verified (chain to --cafile, validity, name) before the
    card signs anything.
    """
    from opcard.errors import OpcardError
    from opcard.tls import TlsClient

    host, port = parse_address(address)
    protocols = [p.strip() for value in alpn for p in value.split(",") if p.strip()]
    for protocol in protocols:
        if len(protocol.encode()) > 255:
            raise click.BadParameter(f"{protocol!r} is too long", param_hint="--alpn")
    pins: tuple[bytes, ...] | None = None
    if pinnedpubkey is not None:
        from opcard.tls.verify import parse_pins

        if no_verify:
            raise click.UsageError("--pinnedpubkey and --no-verify contradict each other")
        try:
            pins = parse_pins(pinnedpubkey)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--pinnedpubkey") from e
    _revocation_options(crlfile, crl_check_all, ocsp_status, no_verify, pins, cafile)
    payload = unescape(send) if send is not None else None
    saved = _read_session_file(sess_in) if sess_in is not None else None
    session = state.session()
    # everything that needs no PIN first: key, certificate, versions, CA file
    try:
        client = TlsClient(
            session,
            slot=slot,
            cafile=cafile,
            verify=not no_verify,
            pinned_keys=pins,
            crlfile=crlfile,
            crl_check_all=crl_check_all,
            ocsp_status=ocsp_status,
            alpn=protocols,
            min_version=tls_min,
            max_version=tls_max,
            session_cache=_session_cache() if reconnect else None,
        )
    except ValueError as e:
        if isinstance(e, OpcardError):  # TLS 1.3 with RSA: exit code 8 with its reason
            raise
        raise click.UsageError(str(e)) from e  # e.g. --tls-min above --tls-max
    if tls_max == "1.3" and client.max_version.label == "TLS 1.2":
        from opcard.pkcs11.mechanisms import NO_PSS_MESSAGE

        echo(
            f"opcard: note: the card key is RSA: {NO_PSS_MESSAGE}; offering TLS 1.2 at most",
            err=True,
        )
    if no_verify:
        echo("opcard: warning: the server's certificate is not verified (--no-verify)", err=True)
    session.login(read_pin(USER, pin, pin_file))
    card = state.card()
    handshakes: list[dict[str, Any]] = []
    conn = _connect_counted(card, client, host, port, servername, timeout, saved, handshakes)
    if saved is not None and not conn.resumed and not quiet:
        why = conn.session_refused or "the server declined it"
        echo(f"opcard: warning: the session in {sess_in} was not resumed: {why}", err=True)
    for _ in range(reconnect):
        with conn, _explained():
            conn.wait_for_session(1.0)  # TLS 1.3: the tickets come after the handshake
        conn = _connect_counted(card, client, host, port, servername, timeout, None, handshakes)
    with conn, _explained():
        apdus = handshakes[-1]["card_apdus"]
        answer: bytes | None = None
        if payload is not None:
            conn.sendall(payload)
            answer = conn.read_until_close(idle_timeout=wait)
        if sess_out is not None:
            _write_session_file(conn, sess_out, quiet)
        if as_json:
            document = _document(client, conn, host, port, apdus, cafile, answer)
            if reconnect:
                document["handshakes"] = handshakes
            echo_json(document)
            return
        if not quiet:
            _show(client, conn, host, port, apdus, cafile)
            if reconnect:
                _show_handshakes(handshakes, reconnect)
        if answer is not None:
            if not quiet:
                echo("---")
            out = binary_stdout()
            out.write(answer)
            out.flush()
            if conn.truncated and not quiet:
                echo(
                    "opcard: note: the server closed the connection without close_notify",
                    err=True,
                )


def _session_cache() -> Any:
    from opcard.tls import SessionCache

    return SessionCache()


def _connect_counted(
    card: Any,
    client: TlsClient,
    host: str,
    port: int,
    servername: str | None,
    timeout: float,
    saved: TlsSession | None,
    handshakes: list[dict[str, Any]],
) -> TlsConnection:
    """One connection; its handshake appended to ``handshakes`` (card APDUs counted by the
    driver's channel)."""
    before = card.apdu_count
    with _explained():
        conn = client.connect(host, port, server_name=servername, timeout=timeout, session=saved)
    handshakes.append(
        {
            "resumed": conn.resumed,
            "version": conn.version.label,
            "handshake_ms": round(conn.handshake_seconds * 1000, 1),
            "card_apdus": card.apdu_count - before,
        }
    )
    return conn


def _show_handshakes(handshakes: list[dict[str, Any]], reconnect: int) -> None:
    lines = [f"Handshakes (--reconnect {reconnect}):"]
    for number, row in enumerate(handshakes, 1):
        kind = "resumed" if row["resumed"] else "full"
        lines.append(
            f"  {number:>3}  {kind:<8} {row['version']}  {row['handshake_ms']:7.1f} ms  "
            f"card APDUs: {row['card_apdus']}"
        )
    resumed = sum(1 for row in handshakes if row["resumed"])
    lines.append(
        f"  {len(handshakes)} handshakes: {resumed} resumed, {len(handshakes) - resumed} full"
    )
    echo("\n".join(lines))


def _read_session_file(path: str) -> TlsSession:
    from opcard.cli.errors import CliError
    from opcard.exitcodes import ExitCode
    from opcard.tls import TlsError, TlsSession

    try:
        return TlsSession.load(path)
    except TlsError as e:
        raise CliError(
            str(e), ExitCode.Error, "--sess-in takes a file written by --sess-out"
        ) from e


def _write_session_file(conn: TlsConnection, path: str, quiet: bool) -> None:
    from opcard.cli.errors import CliError
    from opcard.exitcodes import ExitCode

    saved = conn.wait_for_session(1.0)
    if saved is None:
        if not quiet:
            echo(
                f"opcard: warning: the server gave no resumable session: {path} not written",
                err=True,
            )
        return
    try:
        saved.save(path)
    except OSError as e:
        raise CliError(f"cannot write the session file {path}: {e.strerror}", ExitCode.Error) from e


def _revocation_options(
    crlfile: str | None,
    check_all: bool,
    status: bool,
    no_verify: bool,
    pins: tuple[bytes, ...] | None,
    cafile: str | None,
) -> None:
    if check_all and crlfile is None:
        raise click.UsageError("--crl-check-all needs --crlfile FILE")
    for given, name in ((crlfile is not None, "--crlfile"), (status, "--status")):
        if given and no_verify:
            raise click.UsageError(f"{name} and --no-verify contradict each other")
        if given and pins and cafile is None:
            raise click.UsageError(
                f"{name} needs the chain verified: give --cafile too (--pinnedpubkey alone "
                "checks only the key)"
            )


# what to do about a refused server certificate, by its cause (as curl says it)
_OTHER = "--no-verify skips the check (insecure: anyone in the middle can read the session)"
_CERTIFICATE_HINTS = {
    "name": "connect by a name the certificate holds, or give that name with --servername NAME",
    "expired": "check the date and time of this computer; otherwise the server's certificate "
    "must be renewed",
    "unknown_ca": "give the CA that issued the server's certificate with --cafile FILE, or the "
    "server's key with --pinnedpubkey sha256//HASH",
    "no_ca": "the file given with --cafile must hold the root CA (a self-issued certificate) "
    "or the server's own self-signed certificate",
    "pin": "the server's key is not the pinned one: check --pinnedpubkey (the server may have "
    "a new key, or someone is in the middle)",
    "weak": "the server needs a stronger key (OpenSSL refuses it too at its default level)",
    "revoked": "the server's certificate is revoked: do not connect; its owner must get a new one",
    "crl": "the CRL file must hold a current CRL from the issuer of each checked certificate "
    "(fetch a new one: its nextUpdate may have passed)",
    "ocsp": "the server must staple a current OCSP answer from its CA (openssl s_server "
    "-status_file / -status_url); without --status the answer is not required",
}


@contextlib.contextmanager
def _explained() -> Iterator[None]:
    """TLS failures as one line and a hint (exit code 1)."""
    from opcard.cli.errors import CliError
    from opcard.exitcodes import ExitCode
    from opcard.tls import ClientRejectedError, ServerCertificateError, TlsError

    try:
        yield
    except ServerCertificateError as e:
        raise CliError(str(e), ExitCode.Error, _CERTIFICATE_HINTS.get(e.cause, _OTHER)) from e
    except ClientRejectedError as e:
        raise CliError(
            str(e),
            ExitCode.Error,
            "check that the server trusts the CA of the card's certificate (its client CA "
            "list) and that the certificate is valid",
        ) from e
    except TlsError as e:
        raise CliError(str(e), ExitCode.Error) from e


def _name(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty)"


def _validity(cert: x509.Certificate) -> str:
    return (
        f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"
    )


def _show(
    client: TlsClient,
    conn: TlsConnection,
    host: str,
    port: int,
    apdus: int,
    cafile: str | None,
) -> None:
    server = conn.server_certificate
    lines = [
        f"Connected to {host}:{port}",
        f"Protocol:    {conn.version.label}",
        f"Cipher:      {shown(conn.cipher)}",
    ]
    if conn.alpn:
        lines.append(f"ALPN:        {shown(conn.alpn)}")
    lines += [
        "Server certificate:",
        f"  subject:   {shown(_name(server.subject))}",
        f"  issuer:    {shown(_name(server.issuer))}",
        f"  valid:     {_validity(server)}",
    ]
    if conn.verified_chain is None:
        lines.append("  verified:  NO (--no-verify)")
    elif client.verifier is not None and not client.verifier.check_chain:
        lines.append(
            "  verified:  its key matches --pinnedpubkey (chain, dates and name not checked)"
        )
    else:
        anchor = conn.verified_chain[-1]
        source = cafile or "the system's CA bundle"
        pins_set = client.verifier is not None and client.verifier.pins
        pinned = " and its key matches --pinnedpubkey" if pins_set else ""
        lines.append(
            f"  verified:  yes, for {conn.server_name!r}, up to "
            f"{shown(_name(anchor.subject))} ({shown(source)}){pinned}"
        )
        lines += _revocation_lines(client, conn)
    lines.append(f"Client certificate ({client.slot.name} slot):")
    lines.append(f"  subject:   {shown(_name(client.certificate.subject))}")
    if conn.resumed:
        lines.append(
            f"  signature: none, the session was resumed ({apdus} card APDUs in the handshake)"
        )
    elif conn.client_certificate is None:
        lines.append("  sent:      no, the server did not ask for it")
    else:
        apdu_text = "1 APDU" if apdus == 1 else f"{apdus} APDUs"
        lines.append(
            f"  signature: {conn.client_signature}, on the card ({apdu_text} in the handshake)"
        )
    kind = "resumed" if conn.resumed else "full"
    lines.append(f"Handshake:   {conn.handshake_seconds * 1000:.1f} ms ({kind})")
    echo("\n".join(lines))


def _revocation_lines(client: TlsClient, conn: TlsConnection) -> list[str]:
    verifier = client.verifier
    lines = []
    if verifier is not None and verifier.crl_check is not None:
        what = "every certificate of the chain" if verifier.crl_check == "all" else "it"
        lines.append(f"  CRL:       not revoked ({what} checked, {len(verifier.crls)} CRLs)")
    if verifier is not None and verifier.require_ocsp and conn.ocsp_response:
        from cryptography.x509 import ocsp

        answer = ocsp.load_der_ocsp_response(conn.ocsp_response)
        lines.append(
            f"  OCSP:      good (stapled, produced {answer.produced_at_utc:%Y-%m-%d %H:%M} UTC)"
        )
    return lines


def _document(
    client: TlsClient,
    conn: TlsConnection,
    host: str,
    port: int,
    apdus: int,
    cafile: str | None,
    answer: bytes | None,
) -> dict[str, Any]:
    server = conn.server_certificate
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host,
        "port": port,
        "server_name": conn.server_name,
        "version": conn.version.label,
        "cipher": conn.cipher,
        "alpn": conn.alpn,
        "server_certificate": {
            "subject": _name(server.subject),
            "issuer": _name(server.issuer),
            "not_before": server.not_valid_before_utc.isoformat(),
            "not_after": server.not_valid_after_utc.isoformat(),
            "verified": conn.verified_chain is not None,
            "cafile": cafile,
            "pinned_key": bool(client.verifier and client.verifier.pins),
            "crl_check": client.verifier.crl_check if client.verifier else None,
            "ocsp_status": "good" if conn.ocsp_response and client.verifier else None,
            "chain": [_name(c.subject) for c in conn.verified_chain or []],
        },
        "client_certificate": {
            "slot": client.slot.name.lower(),
            "subject": _name(client.certificate.subject),
            "sent": conn.client_certificate is not None,
            "signature": conn.client_signature,
            "card_apdus": apdus,
        },
        "handshake_ms": round(conn.handshake_seconds * 1000, 1),
        "resumed": conn.resumed,
        "answer": None if answer is None else answer.decode("utf-8", "replace"),
    }
