"""What ``opcard list`` and ``opcard status`` do (text like ``gpg --card-status``, or versioned
JSON), without click: :mod:`opcard.cli.status` declares the commands, :mod:`opcard.cli.fast`
runs them without it."""

from __future__ import annotations

from apdu.openpgp.constants import Sex
from opcard.cli.state import echo, echo_json, shown

TYPE_CHECKING = False  # typing is not imported at run time

if TYPE_CHECKING:
    from typing import Any

    from opcard.card import Card, CardFeatures
    from opcard.cli.state import State

__all__ = ["SCHEMA_VERSION", "card_status", "list_readers", "show_status"]

#: Version of the JSON written by ``opcard status --json`` and ``opcard list --json``.
#: Bumped when a field changes meaning or goes away (new fields do not bump it).
SCHEMA_VERSION = 1

_UIF_NAMES = {0: "off", 1: "on", 2: "fixed", 3: "cached", 4: "cached-fixed"}
_KEY_STATUS = {0: "none", 1: "generated", 2: "imported"}
_SALUTATION: dict[int, str] = {Sex.MALE: "Mr.", Sex.FEMALE: "Ms."}
_NOT_SUPPORTED = "not supported by this card"


def list_readers(as_json: bool) -> None:
    """``opcard list``: the PC/SC readers and the OpenPGP cards in them."""
    from opcard.cli.backend import current

    entries = current().readers()
    if as_json:
        readers = []
        for e in entries:
            card = None
            if e.card is not None:
                card = {
                    "application_id": str(e.card.aid),
                    "serial": e.card.serial,
                    "version": e.card.aid.version_text,
                    "manufacturer": e.card.manufacturer,
                }
            readers.append(
                {
                    "reader": e.reader,
                    "atr": None if e.atr is None else e.atr.hex().upper(),
                    "openpgp_card": card,
                    "in_use_by_another_program": e.exclusive and e.card is None,
                    "not_answering": e.silent,
                }
            )
        echo_json({"schema_version": SCHEMA_VERSION, "readers": readers})
        return
    if not entries:
        echo("no PC/SC readers (is pcscd running and a reader connected?)")
        return
    for e in entries:
        if e.card is not None:
            aid = e.card.aid
            what = (
                f"OpenPGP card {aid.version_text} by {shown(aid.manufacturer_name)}, serial "
                f"{aid.serial_hex}"
            )
        elif e.atr is None:
            what = "empty"
        elif e.exclusive:
            what = "card in exclusive use by another program (e.g. GnuPG's scdaemon)"
        elif e.silent:
            what = "card that does not answer (remove it and insert it again)"
        else:
            what = "card without an OpenPGP application"
        echo(f"{shown(e.reader)}: {what}")
    if any(e.exclusive and e.card is None and e.atr is not None for e in entries):
        from opcard.errors import CARD_IN_USE_REMEDY

        echo(f"opcard: to use a card in exclusive use: {CARD_IN_USE_REMEDY}", err=True)


def _iso(timestamp: int | None) -> str | None:
    if not timestamp:
        return None
    import time  # not datetime (~1.4 ms to import): the same text for the card's 4-byte times

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _text(data: bytes | None) -> str | None:
    if not data:
        return None
    return data.decode("utf-8", errors="replace")


def _certificate(der: bytes) -> dict[str, Any] | None:
    if not der:
        return None
    # read without cryptography, hashed without OpenSSL's hashlib (issue #15); unusual
    # certificates and errors: cryptography's
    from opcard.certinfo import certificate_fields, sha256_hex

    info: dict[str, Any] = {"size": len(der), "sha256": sha256_hex(der)}
    info.update(certificate_fields(der))
    return info


def card_status(card: Card) -> dict[str, Any]:
    """Everything ``opcard status`` shows, as the JSON document (schema_version 1)."""
    from apdu.openpgp.constants import Do, KeySlot

    ard = card.application_data()
    aid = ard.aid
    holder = card.cardholder()

    def optional(tag: int) -> bytes | None:
        try:
            return card.data_object(tag)
        except Exception as e:
            # opcard.errors (loaded already: it made e) only when a DO cannot be read
            from opcard.errors import OpcardError

            if isinstance(e, OpcardError):
                return None
            raise

    pw = card.pw_status()
    pins: dict[str, Any] | None = None
    if pw is not None:
        pins = {
            "user": {"tries_left": pw.retries_pw1, "max_length": pw.max_length_pw1},
            "reset_code": {
                "tries_left": pw.retries_reset_code,
                "max_length": pw.max_length_reset_code,
            },
            "admin": {"tries_left": pw.retries_pw3, "max_length": pw.max_length_pw3},
            "user_pin_valid_for_several_signatures": pw.pw1_valid_for_several_signatures,
        }
    features = card.features()
    counter = card.signature_counter()
    caps = ard.extended_capabilities
    kdf_supported = features.kdf
    certificates = card.certificates()
    keys: dict[str, Any] = {}
    for slot in KeySlot:
        fingerprint = ard.fingerprint(slot)
        info = ard.key_information
        key_status = None if info is None else info.status(slot)
        uif = card.uif(slot)
        algorithm = card.algorithm(slot)
        keys[slot.name.lower()] = {
            "present": card.key_present(slot),
            "algorithm": None if algorithm is None else algorithm.name,
            "fingerprint": None if fingerprint is None else fingerprint.hex().upper(),
            "created": _iso(ard.generation_time(slot)),
            "origin": None if key_status is None else _KEY_STATUS.get(int(key_status)),
            "touch": None if uif is None else _UIF_NAMES.get(uif.mode, f"0x{uif.mode:02X}"),
            "certificate": _certificate(certificates.get(slot, b"")),
            "certificate_supported": slot in features.certificate_slots,
        }
    sex = holder.sex[0] if holder.sex and len(holder.sex) == 1 else None
    return {
        "schema_version": SCHEMA_VERSION,
        "reader": card.reader,
        "application_id": str(aid),
        "version": aid.version_text,
        "manufacturer": {"id": f"{aid.manufacturer:04X}", "name": aid.manufacturer_name},
        "serial": aid.serial_hex,
        "cardholder": {
            "name": holder.name_text or None,
            "language": _text(holder.language),
            "salutation": None if sex is None else _SALUTATION.get(sex),
        },
        "url": _text(optional(Do.URL)),
        "login": _text(optional(Do.LOGIN_DATA)),
        "pins": pins,
        "signature_counter": counter,
        "kdf": {
            "supported": kdf_supported,
            "enabled": kdf_supported and (kdf := card.kdf()) is not None and kdf.enabled,
        },
        "max_certificate_length": None if caps is None else caps.max_certificate_length,
        "features": _features(features),
        "keys": keys,
    }


def _features(features: CardFeatures) -> dict[str, Any]:
    """The ``features`` object: true/false per feature as the card declares it (false = not
    supported by this card); ``touch`` and ``certificate_slots`` list slot names."""
    return {
        "algorithm_information": features.algorithm_information,
        "algorithm_attributes_changeable": features.algorithm_attributes_changeable,
        "key_import": features.key_import,
        "kdf": features.kdf,
        "touch": [slot.name.lower() for slot in features.touch],
        "attestation": features.attestation,
        "reset_code": features.reset_code,
        "private_dos": features.private_dos,
        "signature_counter": features.signature_counter,
        "certificate_slots": [slot.name.lower() for slot in features.certificate_slots],
    }


def _render(doc: dict[str, Any]) -> list[str]:
    """The text of ``opcard status``: every value from the card escaped (opcard.text)."""

    def v(value: object) -> str:
        return "[not set]" if value is None or value == "" else shown(value)

    features = doc["features"]

    lines = [
        f"Reader ............: {shown(doc['reader'])}",
        f"Application ID ....: {doc['application_id']}",
        f"Version ...........: {doc['version']}",
        f"Manufacturer ......: {shown(doc['manufacturer']['name'])} ({doc['manufacturer']['id']})",
        f"Serial number .....: {doc['serial']}",
        f"Name of cardholder : {v(doc['cardholder']['name'])}",
        f"Language prefs ....: {v(doc['cardholder']['language'])}",
        f"Salutation ........: {v(doc['cardholder']['salutation'])}",
        f"URL of public key .: {v(doc['url'])}",
        f"Login data ........: {v(doc['login'])}",
    ]
    pins = doc["pins"]
    if pins is not None:
        forced = "not forced" if pins["user_pin_valid_for_several_signatures"] else "forced"
        reset_code = (
            f"reset code {pins['reset_code']['tries_left']}, " if features["reset_code"] else ""
        )
        lines += [
            f"Signature PIN .....: {forced}",
            f"PIN retry counter .: user {pins['user']['tries_left']}, {reset_code}"
            f"admin {pins['admin']['tries_left']}",
        ]
    if not features["reset_code"]:
        lines.append(f"Reset code ........: {_NOT_SUPPORTED}")
    counter = doc["signature_counter"] if features["signature_counter"] else _NOT_SUPPORTED
    lines.append(f"Signature counter .: {v(counter)}")
    kdf = doc["kdf"]
    if kdf["supported"]:
        lines.append(f"KDF setting .......: {'on' if kdf['enabled'] else 'off'}")
    else:
        lines.append(f"KDF setting .......: {_NOT_SUPPORTED}")
    lines += [
        f"Private DOs .......: {'supported' if features['private_dos'] else _NOT_SUPPORTED}",
        f"Attestation .......: {'supported' if features['attestation'] else _NOT_SUPPORTED}",
        "Algorithm list ....: "
        + (
            "published by the card"
            if features["algorithm_information"]
            else f"{_NOT_SUPPORTED} (it is asked when a key is generated)"
        ),
    ]
    for name, title in (("sig", "Signature key"), ("dec", "Encryption key"), ("aut", "Auth key")):
        key = doc["keys"][name]
        fingerprint = key["fingerprint"]
        if fingerprint:
            fingerprint = " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))
        lines.append(
            f"{title + ' ':.<19}: {v(key['algorithm'])}" + ("" if key["present"] else " (empty)")
        )
        if key["present"]:
            lines.append(f"      fingerprint .: {v(fingerprint)}")
            lines.append(f"      created .....: {v(key['created'])}")
        touch = key["touch"] if name in features["touch"] else _NOT_SUPPORTED
        lines.append(f"      touch .......: {v(touch)}")
        cert = key["certificate"]
        if not key["certificate_supported"]:
            lines.append(
                f"      certificate .: {_NOT_SUPPORTED} (it holds one certificate, for the AUT key)"
                if features["certificate_slots"]
                else f"      certificate .: {_NOT_SUPPORTED}"
            )
        elif cert is None:
            lines.append("      certificate .: [none]")
        elif "error" in cert:
            lines.append(f"      certificate .: {cert['size']} bytes, {shown(cert['error'])}")
        else:
            lines += [
                f"      certificate .: {shown(cert['subject'])}",
                f"        issuer ....: {shown(cert['issuer'])}",
                f"        valid .....: {cert['not_before']} to {cert['not_after']}",
            ]
    return lines


def show_status(state: State, as_json: bool) -> None:
    """``opcard status``: the card's holder, PIN counters and per slot the key and its
    certificate."""
    doc = card_status(state.card())
    if as_json:
        echo_json(doc)
        return
    for line in _render(doc):
        echo(line)
