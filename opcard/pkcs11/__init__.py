"""PKCS#11 in opcard: the vocabulary, mechanisms and ``pkcs11:`` URIs.

- :mod:`opcard.pkcs11.constants` — the PKCS#11 v2.40 / v3.0 constants (object classes,
  attributes, key types, mechanisms, flags) and the table of attribute value types;
- :mod:`opcard.pkcs11.rv` — :class:`ReturnValue` (CK_RV), on its own so that
  :mod:`opcard.errors` loads without the other tables; :mod:`opcard.pkcs11.keytype` —
  :class:`KeyType` (CK_KEY_TYPE), likewise for the key algorithms; :mod:`opcard.pkcs11.basic` —
  :class:`ObjectClass` and :class:`UserType`, likewise for a session;
- :mod:`opcard.pkcs11.mechanisms` — what each mechanism does with a card key (hashes,
  DigestInfo, ECDSA encodings, the checks before a signature or decryption);
- :mod:`opcard.pkcs11.uri` — RFC 7512 ``pkcs11:`` URIs.

The constants are importable from here (``from opcard.pkcs11 import Mechanism``); they are
loaded on first use (PEP 562), so that ``import opcard.errors`` stays cheap. This package
imports nothing of :mod:`opcard.tls`, :mod:`opcard.cli` or :mod:`opcard.serve`.
"""

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from opcard.pkcs11.constants import (
        ARRAY_ATTRIBUTE,
        ATTRIBUTE_KINDS,
        UNAVAILABLE_INFORMATION,
        Attribute,
        AttributeKind,
        AttributeValue,
        CertificateCategory,
        CertificateType,
        EcKdf,
        HardwareFeature,
        InitializeFlag,
        KeyType,
        Mechanism,
        MechanismFlag,
        ObjectClass,
        SessionFlag,
        SessionState,
        SlotFlag,
        TokenFlag,
        UserType,
        attribute_kind,
        normalise_attribute_value,
        normalise_template,
    )
    from opcard.pkcs11.rv import ReturnValue

__all__ = [
    "ARRAY_ATTRIBUTE",
    "ATTRIBUTE_KINDS",
    "Attribute",
    "AttributeKind",
    "AttributeValue",
    "CertificateCategory",
    "CertificateType",
    "EcKdf",
    "HardwareFeature",
    "InitializeFlag",
    "KeyType",
    "Mechanism",
    "MechanismFlag",
    "ObjectClass",
    "ReturnValue",
    "SessionFlag",
    "SessionState",
    "SlotFlag",
    "TokenFlag",
    "UNAVAILABLE_INFORMATION",
    "UserType",
    "attribute_kind",
    "normalise_attribute_value",
    "normalise_template",
]

#: What ``__getattr__`` loads on first use (from :mod:`opcard.pkcs11.constants`, but KeyType,
#: ReturnValue, ObjectClass and UserType from their own modules).
_CONSTANTS = frozenset(__all__)
#: The tables that have a module of their own (the same classes as constants.KeyType,
#: ReturnValue, ObjectClass and UserType).
_OWN_MODULE = {
    "KeyType": "opcard.pkcs11.keytype",
    "ReturnValue": "opcard.pkcs11.rv",
    "ObjectClass": "opcard.pkcs11.basic",
    "UserType": "opcard.pkcs11.basic",
}


def __getattr__(name: str) -> object:
    if name not in _CONSTANTS:
        raise AttributeError(f"module 'opcard.pkcs11' has no attribute {name!r}")
    import importlib

    # KeyType and ReturnValue without the other tables
    module = _OWN_MODULE.get(name, "opcard.pkcs11.constants")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_CONSTANTS})
