"""Floor of ``opcard --reader R status``: pyscard alone, the same APDUs, the same text.

    python floor_status.py --reader R

SELECT, GET DATA 6E, 65, FA (3.4 cards that may change algorithms), 7A, 7F74 (only when 6E
has neither UIF nor 7F74), the certificates (spec 3: SELECT DATA 0, GET DATA 7F21, GET NEXT
DATA 7F21 twice, SELECT DATA 0 again; spec 2: GET DATA 7F21), 5F50, 5E and F9 (cards with
KDF), as opcard sends them to a card with extended lengths (the emulated card's ``extended``
profile); then the lines of ``opcard status``, the certificates' subject, issuer and validity
read from their DER by hand (no ``cryptography``). Issue #15 measures opcard's start-up against
this script (tests/benchmarks/startup.py); tests/cli/test_cli_floors.py checks that both send
the same APDUs and print the same lines.
"""

import sys
from datetime import UTC, datetime

from floorcard import SELECT, Connection, manufacturer_name

SELECT_DATA_0 = bytes.fromhex("00A500040660045C027F21")
NOT_SUPPORTED = "not supported by this card"
CURVES = {
    "2a8648ce3d030107": "nistp256",
    "2b81040022": "nistp384",
    "2b81040023": "nistp521",
    "2b8104000a": "secp256k1",
    "2b2403030208010107": "brainpoolP256r1",
    "2b240303020801010b": "brainpoolP384r1",
    "2b240303020801010d": "brainpoolP512r1",
    "2b06010401da470f01": "ed25519",
    "2b060104019755010501": "cv25519",
}
#: X.509 attribute types with a short name in RFC 4514 strings (as ``cryptography`` writes them)
DN_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be"}


def tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the BER-TLV at ``data[i]``."""
    tag = data[i]
    i += 1
    if tag & 0x1F == 0x1F:
        tag = tag << 8 | data[i]
        i += 1
    n = data[i]
    i += 1
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i : i + k])
        i += k
    return tag, i, i + n


def tlvs(data: bytes) -> dict[int, bytes]:
    out, i = {}, 0
    while i < len(data):
        tag, start, i = tlv(data, i)
        out.setdefault(tag, data[start:i])
    return out


def children(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(data):
        tag, start, i = tlv(data, i)
        out.append((tag, data[start:i]))
    return out


def oid_text(raw: bytes) -> str:
    arcs, value = [], 0
    for b in raw:
        value = value << 7 | b & 0x7F
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def escape_dn(value: str) -> str:
    for char in '\\"+,;<>':
        value = value.replace(char, "\\" + char)
    value = value.replace("\0", "\\00")
    if value[:1] in ("#", " "):
        value = "\\" + value
    if value.endswith(" "):
        value = value[:-1] + "\\ "
    return value


def rfc4514(name: bytes) -> str:
    rdns = []
    for _, rdn in children(name):
        parts = []
        for _, atv in children(rdn):
            _, start, end = tlv(atv, 0)
            key = oid_text(atv[start:end])
            vtag, vstart, vend = tlv(atv, end)
            if vtag in STRING_CODECS:
                text = atv[vstart:vend].decode(STRING_CODECS[vtag])
                parts.append(f"{DN_NAMES.get(key, key)}={escape_dn(text)}")
            else:  # the value's DER, in hex
                parts.append(f"{key}=#{atv[end:vend].hex()}")
        rdns.append("+".join(parts))
    return ",".join(reversed(rdns))


def x509_time(tag: int, raw: bytes) -> str:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def certificate_lines(der: bytes) -> list[str]:
    cert = children(der)[0][1]
    tbs = children(children(cert)[0][1])
    if tbs[0][0] == 0xA0:  # version
        tbs = tbs[1:]
    issuer, validity, subject = tbs[2][1], children(tbs[3][1]), tbs[4][1]
    return [
        f"      certificate .: {rfc4514(subject)}",
        f"        issuer ....: {rfc4514(issuer)}",
        f"        valid .....: {x509_time(*validity[0])} to {x509_time(*validity[1])}",
    ]


def shown(value: object) -> str:
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def v(value: object) -> str:
    return "[not set]" if value is None or value == "" else shown(value)


def algorithm_name(attributes: bytes | None) -> str | None:
    if not attributes:
        return None
    if attributes[0] == 0x01:
        return f"rsa{int.from_bytes(attributes[1:3])}"
    oid = attributes[1:-1] if attributes[-1] == 0xFF else attributes[1:]
    return CURVES.get(oid.hex())


def iso(timestamp: int) -> str | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv: list[str]) -> int:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    reader = opts["--reader"]
    with Connection(reader) as transmit:

        def get_data(tag: int, ins: int = 0xCA) -> bytes | None:
            data, sw = transmit(bytes([0, ins, tag >> 8, tag & 0xFF, 0, 8, 0]))
            return data if sw == 0x9000 else None

        transmit(SELECT)
        ard = tlvs(transmit(bytes.fromhex("00CA006E000000"))[0])[0x6E]
        top = tlvs(ard)
        dd = tlvs(top[0x73])
        aid = top[0x4F]
        version = (aid[6], aid[7])
        caps = dd.get(0xC0, b"")
        flags = caps[0] if caps else 0
        holder = tlvs(get_data(0x65) or b"")
        holder = tlvs(holder.get(0x65, b""))
        algorithm_information = False
        if version >= (3, 4) and flags & 0x04:
            algorithm_information = get_data(0xFA) is not None
        uifs = {slot: dd.get(tag) for slot, tag in (("sig", 0xD6), ("dec", 0xD7), ("aut", 0xD8))}
        touch = [slot for slot, uif in uifs.items() if uif is not None]
        if not touch:
            gfm = top.get(0x7F74)
            if gfm is None:
                gfm = tlvs(get_data(0x7F74) or b"").get(0x7F74)
            if gfm is not None and tlvs(gfm).get(0x81, b"\0")[0] & 0x20:
                touch = ["sig", "dec", "aut"]
        counter_do = get_data(0x7A)
        counter = tlvs(tlvs(counter_do or b"").get(0x7A, b"")).get(0x93)
        certificates: dict[str, bytes] = {}
        if version >= (3, 0):
            transmit(SELECT_DATA_0)
            certificates["aut"] = get_data(0x7F21) or b""
            certificates["dec"] = get_data(0x7F21, 0xCC) or b""
            certificates["sig"] = get_data(0x7F21, 0xCC) or b""
            transmit(SELECT_DATA_0)
        elif version >= (2, 0):
            certificates["aut"] = get_data(0x7F21) or b""
        url, login = get_data(0x5F50), get_data(0x5E)
        kdf = None
        if flags & 0x01:
            kdf = tlvs(get_data(0xF9) or b"").get(0x81, b"\0") != b"\0"

    mid = int.from_bytes(aid[8:10])
    maker = manufacturer_name(mid)
    raw_name = (holder.get(0x5B) or b"").decode("latin-1")
    surname, _, given = raw_name.partition("<<")
    name = " ".join((f"{given} {surname}" if given else surname).replace("<", " ").split())
    sex = holder.get(0x5F35, b"")
    language = holder.get(0x5F2D)
    lines = [
        f"Reader ............: {shown(reader)}",
        f"Application ID ....: {aid.hex().upper()}",
        f"Version ...........: {version[0]}.{version[1]}",
        f"Manufacturer ......: {shown(maker)} ({mid:04X})",
        f"Serial number .....: {aid[10:14].hex().upper()}",
        f"Name of cardholder : {v(name or None)}",
        f"Language prefs ....: {v(language.decode('utf-8', 'replace') if language else None)}",
        f"Salutation ........: {v({b'1': 'Mr.', b'2': 'Ms.'}.get(sex))}",
        f"URL of public key .: {v(url.decode('utf-8', 'replace') if url else None)}",
        f"Login data ........: {v(login.decode('utf-8', 'replace') if login else None)}",
    ]
    pw = dd.get(0xC4)
    reset_code = version >= (2, 0)
    if pw is not None:
        rc = f"reset code {pw[5]}, " if reset_code else ""
        lines += [
            f"Signature PIN .....: {'not forced' if pw[0] == 1 else 'forced'}",
            f"PIN retry counter .: user {pw[4]}, {rc}admin {pw[6]}",
        ]
    if not reset_code:
        lines.append(f"Reset code ........: {NOT_SUPPORTED}")
    shown_counter = int.from_bytes(counter) if counter is not None else NOT_SUPPORTED
    lines.append(f"Signature counter .: {v(shown_counter)}")
    kdf_text = NOT_SUPPORTED if kdf is None else "on" if kdf else "off"
    private_dos = bool(flags & 0x08) if caps else version >= (2, 0)
    attestation = 0xDA in dd or 0xD9 in dd
    lines += [
        f"KDF setting .......: {kdf_text}",
        f"Private DOs .......: {'supported' if private_dos else NOT_SUPPORTED}",
        f"Attestation .......: {'supported' if attestation else NOT_SUPPORTED}",
        "Algorithm list ....: "
        + (
            "published by the card"
            if algorithm_information
            else f"{NOT_SUPPORTED} (it is asked when a key is generated)"
        ),
    ]
    fingerprints = dd.get(0xC5, b"\0" * 60)
    dates = dd.get(0xCD, b"\0" * 12)
    key_info = dict(zip(dd.get(0xDE, b"")[::2], dd.get(0xDE, b"")[1::2], strict=True))
    uif_names = {0: "off", 1: "on", 2: "fixed", 3: "cached", 4: "cached-fixed"}
    slots = (("sig", "Signature key", 0xC1), ("dec", "Encryption key", 0xC2))
    for index, (slot, title, attributes_tag) in enumerate((*slots, ("aut", "Auth key", 0xC3))):
        fingerprint = fingerprints[20 * index : 20 * index + 20]
        fingerprint_hex = fingerprint.hex().upper() if any(fingerprint) else None
        status = key_info.get(index + 1)
        present = status != 0 if status is not None else fingerprint_hex is not None
        algorithm = algorithm_name(dd.get(attributes_tag))
        lines.append(f"{title + ' ':.<19}: {v(algorithm)}" + ("" if present else " (empty)"))
        if present:
            spaced = fingerprint_hex and " ".join(
                fingerprint_hex[i : i + 4] for i in range(0, 40, 4)
            )
            lines.append(f"      fingerprint .: {v(spaced)}")
            lines.append(
                f"      created .....: {v(iso(int.from_bytes(dates[4 * index : 4 * index + 4])))}"
            )
        uif = uifs[slot]
        touch_text = (
            (uif_names.get(uif[0], f"0x{uif[0]:02X}") if uif else None)
            if slot in touch
            else NOT_SUPPORTED
        )
        lines.append(f"      touch .......: {v(touch_text)}")
        if slot not in certificates:
            lines.append(
                f"      certificate .: {NOT_SUPPORTED} (it holds one certificate, for the AUT key)"
                if certificates
                else f"      certificate .: {NOT_SUPPORTED}"
            )
        elif not certificates[slot]:
            lines.append("      certificate .: [none]")
        else:
            lines += certificate_lines(certificates[slot])
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
