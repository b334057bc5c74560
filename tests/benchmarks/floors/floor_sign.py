"""Floor of ``opcard --reader R sign --slot sig|aut --pin-file PINFILE FILE``: pyscard alone,
the same APDUs, the same output (the raw signature on standard output).

    python floor_sign.py --reader R [--slot sig|aut] --pin-file PINFILE FILE

SELECT, GET DATA 6E (the key's algorithm), READ PUBLIC KEY of the slot, GET DATA F9 (KDF:
this floor refuses a card with KDF on), VERIFY 82 (and VERIFY 81 for the SIG key) with the
first line of PINFILE, PSO:COMPUTE DIGITAL SIGNATURE (SIG) or INTERNAL AUTHENTICATE (AUT) over
the SHA-256 hash of FILE (RSA: PKCS#1 DigestInfo, ECDSA: the hash, written back as DER;
EdDSA: the file itself), then VERIFY FF 81 / FF 82 (log out), as opcard sends them to a card
with extended lengths (the emulated card's ``extended`` profile). Issue #15 measures opcard's
start-up against this script (tests/benchmarks/startup.py); tests/cli/test_cli_floors.py checks
that both send the same APDUs and write the same signature.
"""

import sys
from hashlib import sha256

from floorcard import SELECT, Connection

SHA256_DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420")
#: slot → (algorithm attributes tag in 73, control reference template of READ PUBLIC KEY)
SLOTS = {"sig": (0xC1, 0xB6), "dec": (0xC2, 0xB8), "aut": (0xC3, 0xA4)}


def tlvs(data: bytes):
    """(tag, value) of each BER-TLV in ``data`` (tags of one or two bytes)."""
    i = 0
    while i < len(data):
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
        yield tag, data[i : i + n]
        i += n


def der_int(value: bytes) -> bytes:
    value = value.lstrip(b"\0") or b"\0"
    if value[0] & 0x80:
        value = b"\0" + value
    return bytes([0x02, len(value)]) + value


def ecdsa_der(raw: bytes) -> bytes:
    half = len(raw) // 2
    body = der_int(raw[:half]) + der_int(raw[half:])
    length = bytes([len(body)]) if len(body) < 0x80 else bytes([0x81, len(body)])
    return b"\x30" + length + body


def extended(header: bytes, data: bytes) -> bytes:
    return header + b"\0" + len(data).to_bytes(2) + data + b"\x08\x00"


def main(argv: list[str]) -> int:
    opts = dict(zip(argv[:-1:2], argv[1:-1:2], strict=True))
    reader, slot, path = opts["--reader"], opts.get("--slot", "sig"), argv[-1]
    attributes_tag, crt = SLOTS[slot]
    with open(opts["--pin-file"], "rb") as f:
        pin = f.readline().rstrip(b"\r\n")
    with open(path, "rb") as f:
        message = f.read()
    with Connection(reader) as transmit:

        def send(apdu: bytes) -> bytes:
            data, sw = transmit(apdu)
            if sw != 0x9000:
                raise SystemExit(f"{apdu[:4].hex()}: status {sw:04X}")
            return data

        send(SELECT)
        ard = send(bytes.fromhex("00CA006E000000"))
        discretionary = dict(tlvs(dict(tlvs(dict(tlvs(ard))[0x6E]))[0x73]))
        algorithm = discretionary[attributes_tag][0]
        send(extended(bytes.fromhex("00478100"), bytes([crt, 0])))
        kdf = dict(tlvs(transmit(bytes.fromhex("00CA00F9000800"))[0]))
        if kdf.get(0x81, b"\0") != b"\0":
            raise SystemExit("this floor does not derive PINs (KDF is on)")
        try:
            for reference in (0x82, 0x81) if slot == "sig" else (0x82,):
                _, sw = transmit(bytes([0, 0x20, 0, reference, len(pin)]) + pin)
                if sw != 0x9000:
                    raise SystemExit(f"VERIFY {reference:02X}: status {sw:04X}")
            if algorithm == 0x16:  # EdDSA signs the message itself
                data = message
            elif algorithm == 0x01:  # RSA: PKCS#1 v1.5 DigestInfo
                data = SHA256_DIGEST_INFO + sha256(message).digest()
            else:  # ECDSA: the hash
                data = sha256(message).digest()
            header = bytes.fromhex("002A9E9A" if slot == "sig" else "00880000")
            signature = send(extended(header, data))
        finally:
            transmit(bytes.fromhex("0020FF81"))
            transmit(bytes.fromhex("0020FF82"))
    if algorithm not in (0x01, 0x16):
        signature = ecdsa_der(signature)
    sys.stdout.buffer.write(signature)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
