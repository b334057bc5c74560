"""What ``opcard sign`` does, without click (:mod:`opcard.cli.sign` declares it)."""

from __future__ import annotations

from opcard.cli.pins import USER, read_pin
from opcard.cli.state import UsageProblem, to_slot, write_output

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from typing import BinaryIO

    from opcard.cli.state import State

__all__ = ["sign"]


def sign(
    state: State,
    slot: str,
    hash_name: str | None,
    padding: str,
    openpgp: bool,
    output: str | None,
    pin: str | None,
    pin_file: str | None,
    file: BinaryIO,
) -> None:
    """Sign ``file`` with the key of ``slot``: the raw signature (RSA PKCS#1 v1.5, ECDSA as
    DER, Ed25519 of the file itself), or with ``openpgp`` an armored OpenPGP detached
    signature."""
    key_slot = to_slot(slot)
    if key_slot.name == "DEC":
        raise UsageProblem(
            "the DEC key decrypts; sign with sig or aut", invalid_value=True, param_hint="--slot"
        )
    card = state.card()
    if openpgp:
        if key_slot.name != "SIG":
            raise UsageProblem("OpenPGP signatures are made by the sig key", invalid_value=True)
        from opcard.openpgp import detached_signature

        session = state.session()
        session.login(read_pin(USER, pin, pin_file))
        write_output(detached_signature(session, file, hash_name=hash_name), output)
        return
    public = card.public_key(key_slot)
    if public is None:
        from opcard.errors import ObjectNotFoundError

        raise ObjectNotFoundError(f"there is no key in the {key_slot.name} slot")
    name = (hash_name or "sha256").lower()
    if padding.lower() == "pss":
        # the mechanism rules refuse it with the reason (no RSA-PSS on OpenPGP cards)
        from opcard.pkcs11 import Mechanism, MechanismFlag
        from opcard.pkcs11.mechanisms import check_mechanism

        info = state.session().key_info(key_slot)
        check_mechanism(Mechanism[f"{name.upper()}_RSA_PKCS_PSS"], info, MechanismFlag.SIGN)
        raise AssertionError("the mechanism rules accepted RSA-PSS")  # pragma: no cover
    from opcard.pkcs11.keytype import KeyType

    session = state.session()
    if public.key_type is KeyType.EC_EDWARDS:
        from opcard.pkcs11 import Mechanism

        data = file.read()
        session.login(read_pin(USER, pin, pin_file))
        write_output(session.sign(key_slot, data, Mechanism.EDDSA), output)
        return
    import hashlib

    hasher = hashlib.new(name)
    while block := file.read(65536):
        hasher.update(block)
    session.login(read_pin(USER, pin, pin_file))
    signature = session.sign_digest(key_slot, hasher.digest(), name)
    if public.key_type is KeyType.EC:
        from opcard.pkcs11.mechanisms import ecdsa_raw_to_der

        signature = ecdsa_raw_to_der(signature)
    write_output(signature, output)
