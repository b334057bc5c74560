"""Floor of ``opcard --reader R cert export --slot aut``: pyscard alone, the same APDUs, the
same output (the certificate as PEM on standard output).

    python floor_cert_export.py --reader R [--slot aut|dec|sig]

SELECT, GET DATA 6E (opcard reads it for the card's limits), SELECT DATA 7F21 (occurrence 0
AUT, 1 DEC, 2 SIG), GET DATA 7F21 — with the extended-length forms opcard sends to a card
that takes them (the emulated card's ``extended`` profile). Issue #15 measures opcard's
start-up against this script (tests/benchmarks/startup.py); tests/cli/test_cli_floors.py checks
that both send the same APDUs and print the same bytes.
"""

import sys
from binascii import b2a_base64

from floorcard import SELECT, Connection

OCCURRENCE = {"aut": 0, "dec": 1, "sig": 2}


def main(argv: list[str]) -> int:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    reader, slot = opts["--reader"], opts.get("--slot", "aut")
    with Connection(reader) as transmit:

        def send(apdu: bytes) -> bytes:
            data, sw = transmit(apdu)
            if sw != 0x9000:
                raise SystemExit(f"{apdu[:4].hex()}: {sw:04x}")
            return data

        send(SELECT)
        send(bytes.fromhex("00CA006E000000"))
        send(bytes([0x00, 0xA5, OCCURRENCE[slot], 0x04, 0x06, 0x60, 0x04, 0x5C, 0x02, 0x7F, 0x21]))
        der = send(bytes.fromhex("00CA7F21000800"))
    if not der:
        raise SystemExit(f"no certificate in the {slot.upper()} slot")
    text = b2a_base64(der, newline=False)  # what base64.b64encode calls (as opcard)
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    sys.stdout.buffer.write(
        b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
