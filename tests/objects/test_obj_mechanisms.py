"""Every mechanism per key type on the emulated card, each result checked with ``cryptography``
against the demo public key (signatures) or a software peer (ECDH, RSA encryption); card keys
as ``cryptography`` private keys (CSR and certificates built with them verify)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID
from opcard_support import HASHES, PW1, SLOTS, Rig, digest, raw_to_der, verify_digest

from opcard import Mechanism
from opcard.errors import (
    DataLengthError,
    NotLoggedInError,
    UnsupportedMechanismError,
)
from opcard.keys import CardEcPrivateKey, CardEd25519PrivateKey, CardRsaPrivateKey
from opcard.pkcs11 import ReturnValue
from opcard.pkcs11.mechanisms import DIGEST_INFO_PREFIXES

MESSAGE = b"opcard signs this message" * 3
HASH_NAMES = ("sha1", "sha224", "sha256", "sha384", "sha512")
RSA_MECHANISMS = {
    "sha1": Mechanism.SHA1_RSA_PKCS,
    "sha224": Mechanism.SHA224_RSA_PKCS,
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
ECDSA_MECHANISMS = {
    "sha1": Mechanism.ECDSA_SHA1,
    "sha224": Mechanism.ECDSA_SHA224,
    "sha256": Mechanism.ECDSA_SHA256,
    "sha384": Mechanism.ECDSA_SHA384,
    "sha512": Mechanism.ECDSA_SHA512,
}


def test_signing_mechanisms(card_rig: Rig) -> None:
    """Every signing mechanism of the SIG (PSO:CDS) and AUT (INTERNAL AUTHENTICATE) keys."""
    demo = card_rig.demo
    with card_rig.card.session() as s:
        s.login(PW1)
        for slot in ("sig", "aut"):
            public = demo[slot].public
            key = s.private_key(slot)
            if isinstance(public, rsa.RSAPublicKey):
                for name in HASH_NAMES:
                    # CKM_RSA_PKCS: the caller's DigestInfo
                    info = DIGEST_INFO_PREFIXES[name] + digest(name, MESSAGE)
                    sig = key.sign(info, Mechanism.RSA_PKCS)
                    assert len(sig) == 256
                    public.verify(sig, MESSAGE, padding.PKCS1v15(), HASHES[name]())
                    # CKM_SHAx_RSA_PKCS: the card key hashes nothing; opcard does
                    sig = s.sign(slot, MESSAGE, RSA_MECHANISMS[name])
                    public.verify(sig, MESSAGE, padding.PKCS1v15(), HASHES[name]())
                assert s.sign(slot, info) == s.sign(slot, info, Mechanism.RSA_PKCS)  # default
            elif isinstance(public, ec.EllipticCurvePublicKey):
                for name in HASH_NAMES:
                    # CKM_ECDSA: a hash of any supported length, fitted to the curve
                    raw = key.sign(digest(name, MESSAGE), Mechanism.ECDSA)
                    assert len(raw) == 64
                    public.verify(raw_to_der(raw), MESSAGE, ec.ECDSA(HASHES[name]()))
                    raw = s.sign(slot, MESSAGE, ECDSA_MECHANISMS[name])
                    public.verify(raw_to_der(raw), MESSAGE, ec.ECDSA(HASHES[name]()))
                raw = s.sign(slot, digest("sha256", MESSAGE))  # default CKM_ECDSA
                public.verify(raw_to_der(raw), MESSAGE, ec.ECDSA(hashes.SHA256()))
            else:
                assert isinstance(public, ed25519.Ed25519PublicKey)
                for message in (MESSAGE, b"\x00", os.urandom(1000)):
                    sig = key.sign(message, Mechanism.EDDSA)
                    assert len(sig) == 64
                    public.verify(sig, message)
                with pytest.raises(DataLengthError, match="empty"):
                    key.sign(b"", Mechanism.EDDSA)
                public.verify(s.sign(slot, MESSAGE), MESSAGE)  # default CKM_EDDSA
                with pytest.raises(UnsupportedMechanismError):
                    s.sign(slot, MESSAGE, Mechanism.ECDSA_SHA256)


def test_sign_digest_and_digest_signer(card_rig: Rig) -> None:
    demo = card_rig.demo
    with card_rig.card.session() as s:
        s.login(PW1)
        for slot in ("sig", "aut"):
            public = demo[slot].public
            if isinstance(public, ed25519.Ed25519PublicKey):
                with pytest.raises(UnsupportedMechanismError, match="PureEdDSA"):
                    s.sign_digest(slot, digest("sha256", MESSAGE), "sha256")
                with pytest.raises(UnsupportedMechanismError, match="PureEdDSA"):
                    s.digest_signer(slot).sign_digest(digest("sha256", MESSAGE), "sha256")
                continue
            signer = s.digest_signer(slot)
            for name in HASH_NAMES:
                d = digest(name, MESSAGE)
                verify_digest(public, s.sign_digest(slot, d, name), name, d)
                verify_digest(public, signer.sign_digest(d, name), name, d)
                der = signer.sign_digest_der(d, name)
                if isinstance(public, ec.EllipticCurvePublicKey):
                    public.verify(der, d, ec.ECDSA(Prehashed(HASHES[name]())))
                else:
                    assert isinstance(public, rsa.RSAPublicKey)
                    public.verify(der, d, padding.PKCS1v15(), Prehashed(HASHES[name]()))
            with pytest.raises(DataLengthError):
                signer.sign_digest(b"\x01" * 31, "sha256")
            # the hash is explicit: a SHA-384 digest declared as SHA-512 is refused
            with pytest.raises(DataLengthError):
                s.sign_digest(slot, digest("sha384", MESSAGE), "sha512")


def test_decryption_and_derivation(card_rig: Rig) -> None:
    demo = card_rig.demo
    public = demo["dec"].public
    with card_rig.card.session() as s:
        s.login(PW1)
        key = s.private_key("dec")
        if isinstance(public, rsa.RSAPublicKey):
            for size in (1, 32, 245):
                secret = os.urandom(size)
                cryptogram = public.encrypt(secret, padding.PKCS1v15())
                assert key.decrypt(cryptogram) == secret
                assert s.decrypt("dec", cryptogram, Mechanism.RSA_PKCS) == secret
                rsa_key = key.to_cryptography()
                assert isinstance(rsa_key, CardRsaPrivateKey)
                assert rsa_key.decrypt(cryptogram, padding.PKCS1v15()) == secret
            assert isinstance(rsa_key, CardRsaPrivateKey)
            with pytest.raises(UnsupportedMechanismError, match="OAEP"):
                rsa_key.decrypt(
                    cryptogram, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
                )
            with pytest.raises(UnsupportedMechanismError, match="decrypts") as refused:
                s.derive("dec", b"\x04" + bytes(64))
            assert refused.value.return_value is ReturnValue.KEY_TYPE_INCONSISTENT
        elif isinstance(public, ec.EllipticCurvePublicKey):
            for _ in range(3):
                peer = ec.generate_private_key(public.curve)
                point = peer.public_key().public_bytes(
                    Encoding.X962, PublicFormat.UncompressedPoint
                )
                expected = peer.exchange(ec.ECDH(), public)
                assert key.derive(point) == expected
                ec_key = key.to_cryptography()
                assert isinstance(ec_key, CardEcPrivateKey)
                assert ec_key.exchange(ec.ECDH(), peer.public_key()) == expected
            with pytest.raises(UnsupportedMechanismError, match="derives") as refused:
                s.decrypt("dec", b"\x00" * 32)
            assert refused.value.return_value is ReturnValue.KEY_TYPE_INCONSISTENT
        else:
            assert isinstance(public, x25519.X25519PublicKey)
            for _ in range(3):
                x_peer = x25519.X25519PrivateKey.generate()
                expected = x_peer.exchange(public)
                assert key.derive(x_peer.public_key().public_bytes_raw()) == expected
                x_key = key.to_cryptography()
                assert isinstance(x_key, x25519.X25519PrivateKey)
                assert x_key.exchange(x_peer.public_key()) == expected
        # the signing keys neither decrypt nor derive
        # (as docs/opcard.md says: UnsupportedMechanismError, CKR_KEY_FUNCTION_NOT_PERMITTED)
        sent = len(card_rig.sent)
        for slot in ("sig", "aut"):
            with pytest.raises(UnsupportedMechanismError) as refused:
                s.decrypt(slot, b"\x00" * 16)
            assert refused.value.return_value is ReturnValue.KEY_FUNCTION_NOT_PERMITTED
            with pytest.raises(UnsupportedMechanismError) as refused:
                s.derive(slot, b"\x04" + bytes(64))
            assert refused.value.return_value is ReturnValue.KEY_FUNCTION_NOT_PERMITTED
        assert len(card_rig.sent) == sent  # refused before anything was sent
        with pytest.raises(UnsupportedMechanismError):
            s.sign("dec", digest("sha256", MESSAGE))


def test_rsa_pss_refused_with_the_reason(rig: Callable[..., Rig]) -> None:
    r = rig("extended", "demo-rsa")
    with r.card.session() as s:
        s.login(PW1)
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        for slot in ("sig", "aut"):
            card_key = s.private_key(slot).to_cryptography()  # reads the public key
            assert isinstance(card_key, CardRsaPrivateKey)
            with r.count() as n:
                with pytest.raises(UnsupportedMechanismError) as info:
                    s.sign(slot, MESSAGE, Mechanism.SHA256_RSA_PKCS_PSS)
                message = str(info.value)
                assert "PSS" in message and "PKCS#1 v1.5" in message and "TLS 1.3" in message
                assert "ECC" in message
                assert info.value.return_value is ReturnValue.MECHANISM_INVALID
                with pytest.raises(UnsupportedMechanismError, match="RSA-PSS"):
                    s.sign(slot, digest("sha256", MESSAGE), Mechanism.RSA_PKCS_PSS)
                with pytest.raises(UnsupportedMechanismError, match=r"TLS 1\.3") as via_key:
                    card_key.sign(MESSAGE, pss, hashes.SHA256())
                assert "PSS" in str(via_key.value)
                with pytest.raises(UnsupportedMechanismError, match="CKM_RSA_X_509"):
                    s.sign(slot, bytes(256), Mechanism.RSA_X_509)
            assert n[0] == 0  # refused before anything was sent
        with pytest.raises(UnsupportedMechanismError) as other_type:
            s.sign("sig", digest("sha256", MESSAGE), Mechanism.ECDSA)
        assert other_type.value.return_value is ReturnValue.KEY_TYPE_INCONSISTENT


def test_operations_need_login(card_rig: Rig) -> None:
    """Without login the private key operations are refused before anything is sent (the
    public keys, which the input formats depend on, were read before)."""
    with card_rig.card.session() as s:
        keys = {slot: s.private_key(slot) for slot in SLOTS}
        for key in keys.values():
            key.attributes()
        with card_rig.count() as n:
            for slot in ("sig", "aut"):
                with pytest.raises(NotLoggedInError):
                    s.sign(slot, MESSAGE, _message_mechanism(card_rig))
                with pytest.raises(NotLoggedInError):
                    s.digest_signer(slot)
            with pytest.raises(NotLoggedInError):
                if card_rig.variant == "demo-rsa":
                    keys["dec"].decrypt(bytes(256))
                else:
                    keys["dec"].derive(
                        bytes(32) if card_rig.variant == "demo-25519" else b"\x04" + bytes(64)
                    )
        assert n[0] == 0


def _message_mechanism(r: Rig) -> Mechanism:
    return {
        "demo-rsa": Mechanism.SHA256_RSA_PKCS,
        "demo-ecc": Mechanism.ECDSA_SHA256,
        "demo-25519": Mechanism.EDDSA,
    }[r.variant or ""]


# --- card keys as cryptography keys -----------------------------------------------------------


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _hash_for(key: object) -> hashes.HashAlgorithm | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def test_csr_and_certificates_signed_on_the_card(card_rig: Rig) -> None:
    demo = card_rig.demo
    now = datetime.datetime(2025, 6, 2, tzinfo=datetime.UTC)
    with card_rig.card.session() as s:
        s.login(PW1)
        for slot in ("sig", "aut"):
            card_key = s.private_key(slot).to_cryptography()
            assert card_key.public_key() == demo[slot].public
            if isinstance(demo[slot].public, rsa.RSAPublicKey):
                assert isinstance(card_key, CardRsaPrivateKey) and card_key.key_size == 2048
            elif isinstance(demo[slot].public, ec.EllipticCurvePublicKey):
                assert isinstance(card_key, CardEcPrivateKey) and card_key.curve.name == "secp256r1"
            else:
                assert isinstance(card_key, CardEd25519PrivateKey)
            algorithm = _hash_for(card_key)
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(_name(f"opcard {slot}"))
                .sign(card_key, algorithm)  # type: ignore[arg-type]
            )
            assert csr.is_signature_valid
            assert csr.public_key() == demo[slot].public
            cert = (
                x509.CertificateBuilder()
                .subject_name(_name(f"opcard {slot}"))
                .issuer_name(_name(f"opcard {slot}"))
                .public_key(card_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(card_key, algorithm)  # type: ignore[arg-type]
            )
            cert.verify_directly_issued_by(cert)
            _check_signed_by(cert, demo[slot].public)
            # the check can fail: the card's signature does not verify with another key
            with pytest.raises(InvalidSignature):
                _check_signed_by(cert, _other_key(demo[slot].private).public_key())


def _other_key(
    private: object,
) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    """A different software key of the same type."""
    if isinstance(private, rsa.RSAPrivateKey):
        return rsa.generate_private_key(65537, 2048)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return ec.generate_private_key(private.curve)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    return ed25519.Ed25519PrivateKey.generate()


def _check_signed_by(cert: x509.Certificate, public: object) -> None:
    if isinstance(public, rsa.RSAPublicKey):
        assert cert.signature_hash_algorithm is not None
        public.verify(
            cert.signature,
            cert.tbs_certificate_bytes,
            padding.PKCS1v15(),
            cert.signature_hash_algorithm,
        )
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert cert.signature_hash_algorithm is not None
        public.verify(
            cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
        )
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(cert.signature, cert.tbs_certificate_bytes)


def test_cryptography_key_interfaces(card_rig: Rig) -> None:
    demo = card_rig.demo
    with card_rig.card.session() as s:
        s.login(PW1)
        for slot in SLOTS:
            card_key = s.private_key(slot).to_cryptography()
            with pytest.raises(UnsupportedMechanismError, match="cannot be exported"):
                card_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
            assert repr(card_key).startswith("<Card")
            public = demo[slot].public
            if slot == "dec":
                continue
            if isinstance(card_key, CardRsaPrivateKey):
                assert isinstance(public, rsa.RSAPublicKey)
                sig = card_key.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA384())
                public.verify(sig, MESSAGE, padding.PKCS1v15(), hashes.SHA384())
                d = digest("sha512", MESSAGE)
                sig = card_key.sign(d, padding.PKCS1v15(), Prehashed(hashes.SHA512()))
                public.verify(sig, MESSAGE, padding.PKCS1v15(), hashes.SHA512())
                with pytest.raises(UnsupportedMechanismError):
                    card_key.private_numbers()
            elif isinstance(card_key, CardEcPrivateKey):
                assert isinstance(public, ec.EllipticCurvePublicKey)
                der = card_key.sign(MESSAGE, ec.ECDSA(hashes.SHA384()))
                public.verify(der, MESSAGE, ec.ECDSA(hashes.SHA384()))
                d = digest("sha256", MESSAGE)
                der = card_key.sign(d, ec.ECDSA(Prehashed(hashes.SHA256())))
                public.verify(der, MESSAGE, ec.ECDSA(hashes.SHA256()))
            else:
                assert isinstance(card_key, CardEd25519PrivateKey)
                assert isinstance(public, ed25519.Ed25519PublicKey)
                public.verify(card_key.sign(MESSAGE), MESSAGE)
