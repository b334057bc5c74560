"""opcard.pkcs11: every constant against independent C headers, and the attribute type table."""

from __future__ import annotations

import datetime
import re
from enum import Enum
from pathlib import Path

import pytest
from conftest import require_file

from opcard.pkcs11 import (
    ARRAY_ATTRIBUTE,
    ATTRIBUTE_KINDS,
    Attribute,
    AttributeKind,
    CertificateCategory,
    CertificateType,
    EcKdf,
    HardwareFeature,
    InitializeFlag,
    KeyType,
    Mechanism,
    MechanismFlag,
    ObjectClass,
    ReturnValue,
    SessionFlag,
    SessionState,
    SlotFlag,
    TokenFlag,
    UserType,
    attribute_kind,
    normalise_attribute_value,
    normalise_template,
)

NSS_HEADER = "/usr/include/nss/pkcs11t.h"  # PKCS#11 3.0 (libnss3-dev)
P11KIT_HEADER = "/usr/include/p11-kit-1/p11-kit/pkcs11.h"  # PKCS#11 2.40 (libp11-kit-dev)

# (enum, C prefix) for every integer enum of the module.
ENUMS: list[tuple[type[Enum], str]] = [
    (ObjectClass, "CKO_"),
    (KeyType, "CKK_"),
    (CertificateType, "CKC_"),
    (CertificateCategory, "CK_CERTIFICATE_CATEGORY_"),
    (HardwareFeature, "CKH_"),
    (Attribute, "CKA_"),
    (Mechanism, "CKM_"),
    (ReturnValue, "CKR_"),
    (EcKdf, "CKD_"),
    (UserType, "CKU_"),
    (SessionState, "CKS_"),
    (SlotFlag, "CKF_"),
    (TokenFlag, "CKF_"),
    (SessionFlag, "CKF_"),
    (MechanismFlag, "CKF_"),
    (InitializeFlag, "CKF_"),
]

# p11-kit 0.24's pkcs11.h has these five wrong (0x1C0..0x1C4); PKCS#11 2.40 and 3.0 say
# 0x1B5..0x1B9 (OASIS pkcs11t.h, NSS pkcs11t.h).
P11KIT_WRONG = {
    "CKR_EXCEEDED_MAX_ITERATIONS": 0x1C0,
    "CKR_FIPS_SELF_TEST_FAILED": 0x1C1,
    "CKR_LIBRARY_LOAD_FAILED": 0x1C2,
    "CKR_PIN_TOO_WEAK": 0x1C3,
    "CKR_PUBLIC_KEY_INVALID": 0x1C4,
}

# PKCS#11 3.0 names that neither system header defines (NSS lacks them, p11-kit is 2.40);
# values checked by hand against OASIS published/3-00/pkcs11t.h.
ONLY_IN_OASIS_3_0 = {
    "CKA_UNIQUE_ID": 0x4,
    "CKM_KEA_DERIVE": 0x1012,
    "CKM_AES_XTS": 0x1071,
    "CKM_AES_XTS_KEY_GEN": 0x1072,
    "CKR_AEAD_DECRYPT_FAILED": 0x42,
    "CKF_EC_CURVENAME": 0x4000000,
}

# Names NSS's header adds that are not PKCS#11.
NSS_ONLY = {"CKK_INVALID_KEY_TYPE"}

_DEFINE = re.compile(r"^\s*#\s*define\s+(CK[A-Z]?_\w+)\s+(.+?)\s*(?:/\*.*)?$")


def parse_header(path: str) -> dict[str, int]:
    """``#define CK*_NAME value`` lines of a C header, values evaluated (names may refer to
    earlier names, e.g. ``(CKF_ARRAY_ATTRIBUTE | 0x211UL)``)."""
    values: dict[str, int] = {}
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        m = _DEFINE.match(line)
        if not m:
            continue
        name, expr = m.group(1), m.group(2)
        expr = re.sub(r"\b(0[xX][0-9A-Fa-f]+|\d+)[uU]?[lL]{0,2}\b", r"\1", expr)
        expr = expr.replace("(unsigned long)", "").replace("(CK_ULONG)", "")
        if not re.fullmatch(r"[\w\s()|<>+x]*", expr):
            continue
        try:
            value = eval(expr, {"__builtins__": {}}, dict(values))
        except (NameError, SyntaxError, TypeError):
            continue
        if isinstance(value, int):
            values[name] = value
    return values


@pytest.fixture(scope="module")
def nss() -> dict[str, int]:
    return parse_header(str(require_file(NSS_HEADER)))


@pytest.fixture(scope="module")
def p11kit() -> dict[str, int]:
    return parse_header(str(require_file(P11KIT_HEADER)))


@pytest.mark.parametrize(("enum", "prefix"), ENUMS, ids=[e.__name__ for e, _ in ENUMS])
def test_every_member_matches_a_header(
    nss: dict[str, int], p11kit: dict[str, int], enum: type[Enum], prefix: str
) -> None:
    """Each member equals the NSS (3.0) value, else the p11-kit (2.40) value, else the short
    hand-checked list of 3.0 names neither header has."""
    reference = {**ONLY_IN_OASIS_3_0, **p11kit, **nss}
    missing = [m.name for m in enum if prefix + m.name not in reference]
    assert missing == []
    wrong = {
        m.name: (hex(m.value), hex(reference[prefix + m.name]))
        for m in enum
        if reference[prefix + m.name] != m.value
    }
    assert wrong == {}


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [
        (ObjectClass, "CKO_"),
        (KeyType, "CKK_"),
        (Attribute, "CKA_"),
        (Mechanism, "CKM_"),
        (ReturnValue, "CKR_"),
        (CertificateType, "CKC_"),
        (EcKdf, "CKD_"),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_every_header_value_has_a_member(
    nss: dict[str, int], enum: type[Enum], prefix: str
) -> None:
    """The enums are complete: each value the 3.0 header defines for the prefix is a member
    (aliases and deprecated names collapse onto one member)."""
    values = {m.value for m in enum}
    absent = {
        name: hex(value)
        for name, value in nss.items()
        if name.startswith(prefix)
        and value not in values
        and not name.startswith(prefix + "NSS")
        and name not in NSS_ONLY
    }
    assert absent == {}


def test_return_values_against_p11kit_header(p11kit: dict[str, int]) -> None:
    for name, wrong in P11KIT_WRONG.items():
        assert p11kit.get(name) in (wrong, ReturnValue[name[4:]].value)
    disagree = {
        m.name: (m.value, p11kit[f"CKR_{m.name}"])
        for m in ReturnValue
        if f"CKR_{m.name}" in p11kit
        and f"CKR_{m.name}" not in P11KIT_WRONG
        and p11kit[f"CKR_{m.name}"] != m.value
    }
    assert disagree == {}


@pytest.mark.parametrize(
    ("enum", "prefix"),
    [(e, p) for e, p in ENUMS if e is not ReturnValue],
    ids=[e.__name__ for e, _ in ENUMS if e is not ReturnValue],
)
def test_members_against_p11kit_header(
    p11kit: dict[str, int], enum: type[Enum], prefix: str
) -> None:
    disagree = {
        m.name: (m.value, p11kit[prefix + m.name])
        for m in enum
        if prefix + m.name in p11kit and p11kit[prefix + m.name] != m.value
    }
    assert disagree == {}


def test_values_named_in_the_brief() -> None:
    expected = {
        ObjectClass.CERTIFICATE: 0x1,
        Attribute.CLASS: 0x0,
        KeyType.RSA: 0x0,
        KeyType.EC: 0x3,
        KeyType.EC_EDWARDS: 0x40,
        KeyType.EC_MONTGOMERY: 0x41,
        Mechanism.RSA_PKCS: 0x1,
        Mechanism.SHA256_RSA_PKCS: 0x40,
        Mechanism.ECDSA: 0x1041,
        Mechanism.ECDSA_SHA256: 0x1044,
        Mechanism.EDDSA: 0x1057,
        Mechanism.ECDH1_DERIVE: 0x1050,
        Mechanism.RSA_PKCS_PSS: 0xD,
        CertificateType.X_509: 0x0,
        UserType.SO: 0,
        UserType.USER: 1,
        UserType.CONTEXT_SPECIFIC: 2,
        ReturnValue.PIN_TOO_WEAK: 0x1B8,
        ReturnValue.VENDOR_DEFINED: 0x80000000,
        Attribute.WRAP_TEMPLATE: ARRAY_ATTRIBUTE | 0x211,
    }
    assert {m: m.value for m in expected} == expected
    assert int(TokenFlag.LOGIN_REQUIRED | TokenFlag.TOKEN_INITIALIZED) == 0x404


def test_kind_table() -> None:
    assert attribute_kind(Attribute.TOKEN) is AttributeKind.BOOL
    assert attribute_kind(Attribute.ALWAYS_AUTHENTICATE) is AttributeKind.BOOL
    assert attribute_kind(Attribute.CLASS) is AttributeKind.ULONG
    assert attribute_kind(Attribute.MODULUS_BITS) is AttributeKind.ULONG
    assert attribute_kind(Attribute.MODULUS) is AttributeKind.BIGINT
    assert attribute_kind(Attribute.LABEL) is AttributeKind.STRING
    assert attribute_kind(Attribute.ID) is AttributeKind.BYTES
    assert attribute_kind(Attribute.EC_POINT) is AttributeKind.BYTES
    assert attribute_kind(Attribute.START_DATE) is AttributeKind.DATE
    assert attribute_kind(Attribute.ALLOWED_MECHANISMS) is AttributeKind.MECHANISM_ARRAY
    assert attribute_kind(Attribute.DERIVE_TEMPLATE) is AttributeKind.ATTRIBUTE_ARRAY
    assert attribute_kind(0x80001234) is AttributeKind.BYTES  # vendor: bytes
    # every attribute whose type carries CKF_ARRAY_ATTRIBUTE is an array
    for attribute in Attribute:
        if attribute & ARRAY_ATTRIBUTE and attribute != Attribute.VENDOR_DEFINED:
            assert ATTRIBUTE_KINDS[attribute] in (
                AttributeKind.ATTRIBUTE_ARRAY,
                AttributeKind.MECHANISM_ARRAY,
            )


def test_normalise_values() -> None:
    assert normalise_attribute_value(Attribute.SIGN, True) is True
    assert normalise_attribute_value(Attribute.CLASS, ObjectClass.PRIVATE_KEY) == 3
    assert normalise_attribute_value(Attribute.ID, bytearray(b"\x01")) == b"\x01"
    assert normalise_attribute_value(Attribute.MODULUS, 0x10001) == b"\x01\x00\x01"
    assert normalise_attribute_value(Attribute.PUBLIC_EXPONENT, b"\x00\x01\x00\x01") == (
        b"\x01\x00\x01"
    )
    assert normalise_attribute_value(Attribute.MODULUS, 0) == b"\x00"
    assert normalise_attribute_value(Attribute.LABEL, "Schlüssel".encode()) == "Schlüssel"
    assert normalise_attribute_value(Attribute.START_DATE, b"20240229") == datetime.date(
        2024, 2, 29
    )
    assert normalise_attribute_value(Attribute.END_DATE, b"") is None
    assert normalise_attribute_value(Attribute.ALLOWED_MECHANISMS, [Mechanism.ECDSA]) == (0x1041,)
    assert normalise_template({Attribute.WRAP_TEMPLATE: {Attribute.TOKEN: True}}) == {
        Attribute.WRAP_TEMPLATE: {Attribute.TOKEN: True}
    }


@pytest.mark.parametrize(
    ("attribute", "value", "error"),
    [
        (Attribute.SIGN, 1, TypeError),
        (Attribute.CLASS, True, TypeError),
        (Attribute.CLASS, -1, ValueError),
        (Attribute.CLASS, 2**64, ValueError),
        (Attribute.ID, "01", TypeError),
        (Attribute.LABEL, b"\xff", ValueError),
        (Attribute.MODULUS, -5, ValueError),
        (Attribute.START_DATE, b"2024-1-1", ValueError),
        (Attribute.START_DATE, b"20240230", ValueError),
        (Attribute.ALLOWED_MECHANISMS, b"\x01", TypeError),
        (Attribute.WRAP_TEMPLATE, [1], TypeError),
    ],
)
def test_normalise_rejects(attribute: Attribute, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        normalise_attribute_value(attribute, value)


def test_template_keys_must_be_ints() -> None:
    with pytest.raises(TypeError):
        normalise_template({"CKA_LABEL": "x"})  # type: ignore[arg-type]
