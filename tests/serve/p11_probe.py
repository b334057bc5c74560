"""A PKCS#11 application that does NOT log in and tries to sign anyway (run as a process by
test_serve_install.py): ``python p11_probe.py MODULE TOKEN_LABEL [login=PIN | try=HANDLE,…]``.

Through ``MODULE`` (p11-kit-proxy.so) it opens a session on the token labelled TOKEN_LABEL and
finds its private keys. With ``login=PIN`` it logs in first and prints their handles. Without one it
calls C_SignInit (CKM_ECDSA) with the handles of ``try=`` (those a logged-in process found) and with
every handle from 1 to 256 and, where one is accepted, C_Sign. Prints JSON: ``{"private_keys":
[handles], "accepted": [handles], "signed": [handles], "refusals": {CK_RV: count}}``. Written
with ctypes on the function list, apart from opcard (the judge must not share the code it
judges).
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections import Counter

CK_ULONG = ctypes.c_ulong
CK_RV = CK_ULONG
#: indexes in CK_FUNCTION_LIST after the version (PKCS#11 2.40 order)
INDEX = {
    "C_Initialize": 0, "C_GetSlotList": 4, "C_GetTokenInfo": 6, "C_OpenSession": 12,
    "C_Login": 18,
    "C_FindObjectsInit": 26, "C_FindObjects": 27, "C_FindObjectsFinal": 28,
    "C_SignInit": 42, "C_Sign": 43,
}  # fmt: skip
CKF_SERIAL_SESSION = 4
CKA_CLASS, CKO_PRIVATE_KEY, CKM_ECDSA = 0, 3, 0x1041


class Attribute(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("value", ctypes.c_void_p), ("length", CK_ULONG)]


class Mechanism(ctypes.Structure):
    _fields_ = [("mechanism", CK_ULONG), ("parameter", ctypes.c_void_p), ("length", CK_ULONG)]


def main(module: str, label: str, extra: str = "") -> dict[str, object]:
    lib = ctypes.CDLL(module)
    table = ctypes.POINTER(ctypes.c_void_p)()
    assert lib.C_GetFunctionList(ctypes.byref(table)) == 0
    pointers = ctypes.cast(table, ctypes.POINTER(ctypes.c_void_p))
    f = {n: ctypes.CFUNCTYPE(CK_RV)(pointers[1 + i]) for n, i in INDEX.items()}
    assert f["C_Initialize"](None) == 0
    ids, count = (CK_ULONG * 16)(), CK_ULONG(16)
    assert f["C_GetSlotList"](ctypes.c_ubyte(1), ids, ctypes.byref(count)) == 0
    slot = None
    for slot_id in ids[: count.value]:
        info = ctypes.create_string_buffer(512)
        rv = f["C_GetTokenInfo"](CK_ULONG(slot_id), info)
        if rv == 0 and info.raw[:32].rstrip().decode() == label:
            slot = slot_id
    assert slot is not None, f"no token {label!r}"
    session = CK_ULONG()
    flags = CK_ULONG(CKF_SERIAL_SESSION)
    assert f["C_OpenSession"](CK_ULONG(slot), flags, None, None, ctypes.byref(session)) == 0
    kind, _, value = extra.partition("=")
    pin = value.encode() if kind == "login" else b""
    guessed = [int(h) for h in value.split(",")] if kind == "try" and value else []
    if pin:
        assert f["C_Login"](session, CK_ULONG(1), pin, CK_ULONG(len(pin))) == 0
    klass = CK_ULONG(CKO_PRIVATE_KEY)
    template = Attribute(CKA_CLASS, ctypes.cast(ctypes.byref(klass), ctypes.c_void_p), 8)
    assert f["C_FindObjectsInit"](session, ctypes.byref(template), CK_ULONG(1)) == 0
    found, n = (CK_ULONG * 16)(), CK_ULONG()
    assert f["C_FindObjects"](session, found, CK_ULONG(16), ctypes.byref(n)) == 0
    assert f["C_FindObjectsFinal"](session) == 0
    keys = list(found[: n.value])
    if pin:
        return {"private_keys": keys}
    accepted, signed, refusals = [], [], Counter()
    mechanism = Mechanism(CKM_ECDSA, None, 0)
    digest = (ctypes.c_ubyte * 32)(*range(32))
    for handle in [*guessed, *range(1, 257)]:
        rv = f["C_SignInit"](session, ctypes.byref(mechanism), CK_ULONG(handle))
        if rv != 0:
            refusals[f"{rv:#x}"] += 1
            continue
        accepted.append(handle)
        out, length = (ctypes.c_ubyte * 512)(), CK_ULONG(512)
        if f["C_Sign"](session, digest, CK_ULONG(32), out, ctypes.byref(length)) == 0:
            signed.append(handle)
    return {"private_keys": keys, "accepted": accepted, "signed": signed, "refusals": refusals}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
