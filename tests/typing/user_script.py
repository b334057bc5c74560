"""A user's script: the public API used the way the documentation shows it.

tests/typing/test_typing.py checks this file with ``mypy --strict`` (every call must
type-check as written, without casts or ``isinstance``) and runs :func:`main` against an
emulated card. Nothing here may reach into a private name or an apdu module.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import opcard
from opcard import Attribute, Do, KeySlot, Mechanism, ObjectClass
from opcard.errors import ObjectNotFoundError, WrongPinError
from opcard.openpgp import detached_signature, export_openpgp


def signature_of(session: opcard.Session, message: bytes) -> bytes:
    """Sign with the SIG key and check the signature with the card's public key."""
    key: opcard.PrivateKey = session.get_private_key("sig")
    raw = key.sign(message, Mechanism.ECDSA_SHA256)  # r‖s
    raw_by_name = session.sign(KeySlot.SIG, message, "ECDSA_SHA256")
    raw_by_key = key.sign(message, "CKM_ECDSA_SHA256")
    assert len(raw) == len(raw_by_name) == len(raw_by_key) == 64
    public = session.get_public_key("sig").to_cryptography()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    card_key = key.to_cryptography()  # a cryptography key of the card's type: narrow it, as
    assert isinstance(card_key, ec.EllipticCurvePrivateKey)  # for load_pem_private_key()
    der = card_key.sign(message, ec.ECDSA(hashes.SHA256()))
    public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    return raw


def main(card: opcard.Card) -> dict[str, object]:
    info: opcard.TokenInfo = card.token_info()
    spec: tuple[int, int] = info.spec_version
    firmware: tuple[int, ...] | None = info.firmware_version
    seen: dict[str, object] = {"spec": spec, "firmware": firmware}
    with card.session() as session:
        try:
            session.login("654321")
        except WrongPinError as e:
            seen["retries"] = e.retries
        session.login("123456")
        seen["signature"] = signature_of(session, b"a message")

        signer = session.digest_signer("aut")
        digest = hashlib.sha256(b"transcript").digest()
        seen["fast"] = signer.sign_digest_der(digest, hashes.SHA256())

        certificate: opcard.Certificate = session.get_certificate("aut")
        parsed: x509.Certificate = certificate.to_cryptography()
        seen["subject"] = parsed.subject.rfc4514_string()
        seen["same"] = session.get_key("aut", object_class=ObjectClass.CERTIFICATE).der

        url: opcard.DataObject = session.get_data_object("url")
        seen["url"] = url.value
        label = session.get_private_key("aut")[Attribute.LABEL]
        seen["label"] = label
        try:
            session.get_private_key(label="URL")
        except ObjectNotFoundError as e:
            seen["not found"] = str(e)

        session.login_admin("12345678")
        session.set_data("url", b"https://example.org/jane.asc")
        session.set_data(Do.LOGIN_DATA, "jane")
        card_key = session.get_private_key(KeySlot.AUT).to_cryptography_signer()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Jane Doe")])
        now = datetime.datetime.now(datetime.UTC)
        new_certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(card_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(card_key, hashes.SHA256())
        )
        session.store_certificate("aut", new_certificate)
        seen["stored"] = session.get_certificate("aut").to_cryptography() == new_certificate
        seen["openpgp"] = export_openpgp(session, "Jane Doe <jane@example.org>")
        seen["pgp signature"] = detached_signature(session, b"the data")
    return seen
