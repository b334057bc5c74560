"""OpenPGP with the card: export its keys as an OpenPGP public key, sign with its SIG key.

This is the card-facing half of :mod:`opcard.openpgp`, over :mod:`opcard.openpgp.packets`
(which knows packets, fingerprints and signatures but nothing of cards):

- :func:`card_key_packets` builds the v4 public-key packet of each key on the card from its
  public key and its generation time (CD), and checks that its fingerprint equals the one the
  card stores (C5) — for ECDH keys trying the KDF parameters GnuPG versions write
  (:func:`opcard.openpgp.packets.match_fingerprint`);
- :func:`card_signer` is the signer callback :mod:`opcard.openpgp.packets` wants, made from the
  card's SIG key: RSA and ECDSA sign the OpenPGP digest through PSO:COMPUTE DIGITAL SIGNATURE
  (:meth:`~opcard.session.Session.sign_digest`: DigestInfo for RSA, the hash fitted to the
  curve for ECDSA), EdDSA signs the digest bytes as its message (CKM_EDDSA), as OpenPGP's
  EdDSA (algorithm 22) defines;
- :func:`export_openpgp` gives the transferable public key (primary = SIG, subkeys DEC and
  AUT) whose fingerprints are the card's, self-signed on the card;
- :func:`detached_signature` gives an OpenPGP detached signature made on the card.

Both need a session logged in with the user PIN; the SIG key's PW1 (81) verification is made
by the session as usual (once per signature when the card's C4 policy says so). Example::

    with opcard.open_card() as card, card.session() as session:
        session.login("123456")
        Path("card.asc").write_bytes(export_openpgp(session, "Jane Doe <jane@example.org>"))
        Path("doc.txt.asc").write_bytes(detached_signature(session, Path("doc.txt").read_bytes()))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from apdu.openpgp.constants import KeySlot
from opcard import arguments
from opcard.errors import ObjectNotFoundError, OpenPgpError
from opcard.openpgp import packets as pgp
from opcard.pkcs11 import KeyType, Mechanism

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes

    from opcard.session import Session

__all__ = ["card_key_packets", "card_signer", "detached_signature", "export_openpgp"]


def card_key_packets(
    session: Session, *, check_fingerprints: bool = True
) -> dict[KeySlot, pgp.PublicKeyPacket]:
    """The v4 public-key packet of every key on the card, keyed by slot.

    A key needs its generation time (CD) on the card: the fingerprint depends on it. With
    ``check_fingerprints`` (the default) each packet's fingerprint must equal the card's C5
    entry; a slot whose key does not match raises :class:`~opcard.errors.OpenPgpError` (the
    key was replaced without updating C5, or C5 was computed with parameters opcard does not
    know). Slots without a key are left out.
    """
    card = session.card
    ard = card.application_data()
    packets: dict[KeySlot, pgp.PublicKeyPacket] = {}
    for slot in KeySlot:
        key = card.public_key(slot)
        if key is None:
            continue
        created = ard.generation_time(slot)
        if not created:
            raise OpenPgpError(
                f"the {slot.name} key has no generation time on the card, so its OpenPGP "
                "fingerprint is unknown (it is written with the key by session.generate_key or "
                "session.import_key)"
            )
        public = key.to_cryptography()
        stored = ard.fingerprint(slot)
        if not check_fingerprints or stored is None:
            packets[slot] = pgp.PublicKeyPacket.for_card_key(public, created, slot)
            continue
        packet = pgp.match_fingerprint(public, created, slot, stored)
        if packet is None:
            raise OpenPgpError(
                f"the {slot.name} key's OpenPGP fingerprint (public key + generation time "
                f"{created}) does not equal the one the card stores ({stored.hex().upper()})"
            )
        packets[slot] = packet
    return packets


def card_signer(session: Session) -> pgp.Signer:
    """The :data:`opcard.openpgp.Signer` callback of the card's SIG key."""
    key = session.card.public_key(KeySlot.SIG)
    if key is None:
        raise ObjectNotFoundError("there is no signature key on the card")
    eddsa = key.key_type is KeyType.EC_EDWARDS

    def sign(hash_name: str, digest: bytes) -> bytes:
        if eddsa:  # OpenPGP EdDSA signs the digest as the message
            return session.sign(KeySlot.SIG, digest, Mechanism.EDDSA)
        return session.sign_digest(KeySlot.SIG, digest, hash_name)

    return sign


def _signing_packets(
    session: Session, purpose: str
) -> tuple[pgp.PublicKeyPacket, dict[KeySlot, pgp.PublicKeyPacket]]:
    """The SIG key's packet (it makes every signature) and all the card's packets;
    :class:`~opcard.errors.ObjectNotFoundError` without a SIG key."""
    packets = card_key_packets(session)
    primary = packets.get(KeySlot.SIG)
    if primary is None:
        raise ObjectNotFoundError(f"there is no signature key on the card {purpose}")
    return primary, packets


def export_openpgp(
    session: Session,
    user_id: str,
    *,
    armored: bool = True,
    created: int | None = None,
    hash_name: str | hashes.HashAlgorithm | None = None,
) -> bytes:
    """The card's keys as an OpenPGP transferable public key, self-signed on the card.

    The SIG key is the primary key (certify + sign) with ``user_id``; the DEC key (encrypt)
    and the AUT key (authenticate) are subkeys when present. Every fingerprint equals the
    card's C5 entry. ASCII-armored (``-----BEGIN PGP PUBLIC KEY BLOCK-----``) unless
    ``armored=False``. Costs one signature per packet signed (three with all keys).
    """
    primary, packets = _signing_packets(session, "to certify with")
    data = pgp.export_public_key(
        primary,
        user_id,
        card_signer(session),
        dec=packets.get(KeySlot.DEC),
        aut=packets.get(KeySlot.AUT),
        created=created,
        hash_name=None if hash_name is None else arguments.hash_name(hash_name),
    )
    return pgp.armor(data).encode("ascii") if armored else data


def detached_signature(
    session: Session,
    data: bytes | BinaryIO,
    *,
    armored: bool = True,
    created: int | None = None,
    hash_name: str | hashes.HashAlgorithm | None = None,
) -> bytes:
    """An OpenPGP detached signature of ``data`` (bytes, or a binary file) by the card's SIG
    key; ASCII-armored (``-----BEGIN PGP SIGNATURE-----``) unless ``armored=False``."""
    primary, _ = _signing_packets(session, "to sign with")
    signature = pgp.detached_signature_packet(
        primary,
        card_signer(session),
        data,
        hash_name=None if hash_name is None else arguments.hash_name(hash_name),
        created=created,
    )
    return pgp.armor(signature, "SIGNATURE").encode("ascii") if armored else signature
