"""opcard: OpenPGP smartcards as PKCS#11-like tokens, from Python and the command line.

Example::

    import opcard

    with opcard.open_card() as card, card.session() as session:
        session.login("123456")
        key = session.private_key("aut")
        signature = key.to_cryptography().sign(data, ec.ECDSA(hashes.SHA256()))

Cards are found across PC/SC readers by AID serial (:func:`list_cards`, :func:`open_card`);
a :class:`Card` gives :class:`Session` objects with login state, PKCS#11-style objects and
attributes (:mod:`opcard.objects`), mechanisms (:mod:`opcard.mechanisms`), ``pkcs11:`` URIs
(:mod:`opcard.uri`) and a one-APDU signature path (:meth:`Session.digest_signer`).
"""

from opcard.card import Card, CardInfo, TokenInfo, list_cards, open_card
from opcard.errors import (
    CardError,
    NoCardError,
    NotLoggedInError,
    ObjectNotFoundError,
    OpcardError,
    PinBlockedError,
    SeveralCardsError,
    WrongPinError,
)
from opcard.objects import Certificate, DataObject, PrivateKey, PublicKey
from opcard.pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, UserType
from opcard.session import DigestSigner, Session

__all__ = [
    "Attribute",
    "Card",
    "CardError",
    "CardInfo",
    "Certificate",
    "DataObject",
    "DigestSigner",
    "KeyType",
    "Mechanism",
    "NoCardError",
    "NotLoggedInError",
    "ObjectClass",
    "ObjectNotFoundError",
    "OpcardError",
    "PinBlockedError",
    "PrivateKey",
    "PublicKey",
    "Session",
    "SeveralCardsError",
    "TokenInfo",
    "UserType",
    "WrongPinError",
    "list_cards",
    "open_card",
]
