"""The small PKCS#11 tables a session needs: :class:`ObjectClass` (CK_OBJECT_CLASS) and
:class:`UserType` (CK_USER_TYPE).

Their own module so that :mod:`opcard.session` (whose ``login`` and ``get_key`` take them as
defaults) loads without the other PKCS#11 tables (the 418 mechanisms alone take some 4 ms to
build); :mod:`opcard.pkcs11` and :mod:`opcard.pkcs11.constants` re-export them (the same
classes), and those are the names to use.
"""

from __future__ import annotations

from apdu._enums import IntEnumBody, fast_enum

__all__ = ["ObjectClass", "UserType"]


@fast_enum
class ObjectClass(IntEnumBody):
    """CK_OBJECT_CLASS (``CKO_*``)."""

    DATA = 0x0
    CERTIFICATE = 0x1
    PUBLIC_KEY = 0x2
    PRIVATE_KEY = 0x3
    SECRET_KEY = 0x4
    HW_FEATURE = 0x5
    DOMAIN_PARAMETERS = 0x6
    MECHANISM = 0x7
    OTP_KEY = 0x8
    PROFILE = 0x9
    VENDOR_DEFINED = 0x80000000


@fast_enum
class UserType(IntEnumBody):
    """CK_USER_TYPE (``CKU_*``)."""

    SO = 0x0
    USER = 0x1
    CONTEXT_SPECIFIC = 0x2
