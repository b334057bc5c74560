"""OpenPGP for the card's keys: its public keys as an OpenPGP key, signatures made on the card.

- :mod:`opcard.openpgp.card` — with a logged-in session: :func:`export_openpgp` (the card's
  keys as a transferable public key, self-signed on the card), :func:`detached_signature` (an
  OpenPGP detached signature by the card's SIG key), :func:`card_key_packets`,
  :func:`card_signer`;
- :mod:`opcard.openpgp.packets` — the packets themselves, knowing nothing of cards (RFC 4880,
  RFC 6637): :class:`PublicKeyPacket`, :func:`fingerprint_v4`, :func:`match_fingerprint`,
  :func:`export_public_key` and :func:`detached_signature_packet` with a signer callback,
  :func:`armor` / :func:`dearmor`.

Every name of both modules is importable from here (``from opcard.openpgp import
export_openpgp``).
"""

from opcard.openpgp.card import (
    card_key_packets,
    card_signer,
    detached_signature,
    export_openpgp,
)
from opcard.openpgp.packets import (
    GNUPG_2_2_P384_KDF,
    CompressionAlgorithm,
    EcdhKdf,
    HashAlgorithm,
    KeyFlag,
    PacketTag,
    PublicKeyAlgorithm,
    PublicKeyPacket,
    SignatureType,
    Signer,
    SubpacketType,
    SymmetricAlgorithm,
    armor,
    dearmor,
    default_ecdh_kdf,
    default_hash,
    detached_signature_packet,
    ecdh_kdf_candidates,
    encode_packet,
    export_public_key,
    fingerprint_v4,
    iter_packets,
    match_fingerprint,
)

__all__ = [
    "CompressionAlgorithm",
    "EcdhKdf",
    "GNUPG_2_2_P384_KDF",
    "HashAlgorithm",
    "KeyFlag",
    "PacketTag",
    "PublicKeyAlgorithm",
    "PublicKeyPacket",
    "SignatureType",
    "Signer",
    "SubpacketType",
    "SymmetricAlgorithm",
    "armor",
    "card_key_packets",
    "card_signer",
    "dearmor",
    "default_ecdh_kdf",
    "default_hash",
    "detached_signature",
    "detached_signature_packet",
    "ecdh_kdf_candidates",
    "encode_packet",
    "export_openpgp",
    "export_public_key",
    "fingerprint_v4",
    "iter_packets",
    "match_fingerprint",
]
